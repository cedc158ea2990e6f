"""Coverage and confidence: names the collection lacks, codes no page has, the verdict, the
fitted models, and the contract of the API, the CLI and the calibration report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, build_index, searcher_of
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from procqa import cli
from procqa.evaluation.calibration import (
    C_VALUES,
    FLAG_ANSWERABLE,
    Observation,
    _auroc,
    _coverage,
    _logistic,
    _out_of_fold,
    expected_calibration_error,
    fit,
    leave_one_out,
)
from procqa.ranking import Searcher
from procqa.ranking.coverage import (
    QUESTION_FEATURES,
    RESULT_FEATURES,
    Calibration,
    Evidence,
    Logistic,
    judge,
    subject_kinds,
)
from procqa.ranking.terms import Terms


@pytest.fixture
def searcher(tiny_index: Path, fake_embedder: FakeEmbedder) -> Searcher:
    return searcher_of(tiny_index, fake_embedder)


# Names of things in a question


def test_terms_keep_the_longest_name_and_forgive_a_misspelling() -> None:
    terms = Terms({"procedures": ["vasectomy", "vasectomy reversal"], "tests": ["colonoscopy"]})

    assert [t.name for t in terms.find("vasectomy reversal success rate")] == ["vasectomy reversal"]
    assert [(t.name, t.kind) for t in terms.find("colonscopy prep")] == [("colonoscopy", "tests")]
    assert terms.find("how long is recovery") == []


def test_a_name_that_keeps_one_letter_of_its_words_names_nothing() -> None:
    terms = Terms({"procedures": ["t&a", "i&d", "tonsillectomy"], "tests": ["ct"]})

    assert terms.find("T-shaped coil, how do I check the strings") == []
    assert [t.name for t in terms.find("tonsillectomy or CT scan")] == ["tonsillectomy", "ct"]


def test_a_name_is_given_as_the_question_writes_it() -> None:
    terms = Terms({"procedures": ["lasik", "vasectomy reversal"]})
    query = "is a Vasectomy  Reversal worse than LASIK?"

    assert sorted(t.as_written(query) for t in terms.find(query)) == ["LASIK", "Vasectomy  Reversal"]


@pytest.mark.parametrize(
    ("query", "absent"),
    [
        ("lasik recovery time", "lasik"),
        ("knee arthroscopy recovery", "knee arthroscopy"),
        ("Total knee arthroplasty recovery", None),
        ("colonoscopy preparation", None),
        ("how long is recovery", None),
    ],
)
def test_a_name_no_page_is_about_is_found_absent(searcher: Searcher, query: str, absent: str | None) -> None:
    _, evidence = searcher.examine(query, k=3)

    assert evidence.absent == absent


def test_a_collection_is_about_the_kinds_of_name_its_titles_give() -> None:
    terms = Terms({"procedures": ["colonoscopy"], "conditions": ["asthma", "gout"], "medicines": ["ibuprofen"]})

    assert subject_kinds(terms, ["Asthma", "Gout", "Asthma in children", "Colonoscopy"]) == {"conditions"}
    assert subject_kinds(terms, ["Ibuprofen", "Colonoscopy"]) == {"medicines", "procedures"}
    assert subject_kinds(terms, []) == frozenset()


def test_a_condition_no_page_is_about_is_absent_from_a_collection_of_conditions(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    (tmp_path / "corpus").mkdir()
    for title, cause in [("Asthma", "airways"), ("Gout", "uric acid"), ("Migraine", "the brain")]:
        sections = [
            {"name": "Overview", "text": f"{title} is a long-term condition of {cause}."},
            {"name": "Symptoms", "text": f"{title} can get worse over time; people with COPD or asthma may notice it."},
        ]
        page = {"title": title, "code": None, "sections": sections}
        (tmp_path / "corpus" / f"{title.lower()}.jsonl").write_text(json.dumps(page) + "\n", "utf-8")
    searcher = searcher_of(build_index(tmp_path / "corpus", tmp_path / "index", fake_embedder), fake_embedder)

    assert searcher.examine("copd symptoms getting worse", k=3)[1].absent == "copd"
    assert searcher.examine("asthma symptoms getting worse", k=3)[1].absent is None


@pytest.mark.parametrize(("mentioned", "absent"), [(False, "vasectomy reversal"), (True, None)])
def test_a_look_alike_the_page_speaks_of_is_not_absent(
    tmp_path: Path, fake_embedder: FakeEmbedder, mentioned: bool, absent: str | None
) -> None:
    after = "A vasectomy reversal is possible, but it does not always work." if mentioned else "It is permanent."
    sections = [
        {"name": "Summary", "text": "A vasectomy is a minor operation that makes a man unable to father children."},
        {"name": "Recovery", "text": f"Most men go back to work in two days. {after}"},
    ]
    (tmp_path / "corpus").mkdir()
    page = {"title": "Vasectomy", "code": "55250", "sections": sections}
    (tmp_path / "corpus" / "vasectomy.jsonl").write_text(json.dumps(page) + "\n", "utf-8")
    searcher = searcher_of(build_index(tmp_path / "corpus", tmp_path / "index", fake_embedder), fake_embedder)

    assert searcher.examine("vasectomy reversal success rate", k=3)[1].absent == absent


@pytest.mark.parametrize(
    ("query", "unknown"),
    [("CPT 31231 risks", "31231"), ("what is 0DTJ4ZZ", "0DTJ4ZZ"), ("27447 risks", None), ("B12 levels", None)],
)
def test_a_code_no_page_has_is_found(searcher: Searcher, query: str, unknown: str | None) -> None:
    _, evidence = searcher.examine(query, k=3)

    assert evidence.unknown_code == unknown


def test_evidence_has_every_feature_for_the_question_and_each_result(searcher: Searcher) -> None:
    hits, evidence = searcher.examine("knee replacement recovery", k=4)

    assert len(evidence.question) == len(QUESTION_FEATURES)
    assert evidence.results.shape == (4, len(RESULT_FEATURES))
    behind = evidence.results[:, RESULT_FEATURES.index("behind")]
    assert behind[0] == 0.0 and (np.diff(behind) >= 0).all()
    assert [h.passage.id for h in hits] == [h.passage.id for h in searcher.search("knee replacement recovery", k=4)]


# The verdict


def constant(features: tuple[str, ...], probability: float) -> Logistic:
    """A model that gives every row the same probability."""
    n = len(features)
    intercept = float(np.log(probability / (1 - probability)))
    return Logistic(features, (0.0,) * n, (1.0,) * n, (0.0,) * n, intercept)


def calibration(covered: float, confidence: float = 0.5, threshold: float = 0.5) -> Calibration:
    return Calibration(
        coverage=constant(QUESTION_FEATURES, covered),
        threshold=threshold,
        confidence=constant(QUESTION_FEATURES + RESULT_FEATURES, confidence),
    )


def evidence(
    *, absent: str | None = None, code: str | None = None, outside: str | None = None, named: float = 0.0
) -> Evidence:
    question = tuple(named if f == "named" else 0.0 for f in QUESTION_FEATURES)
    return Evidence(question, np.zeros((2, len(RESULT_FEATURES))), absent, code, outside)


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (evidence(absent="LASIK"), "no page about LASIK here"),
        (
            evidence(outside="Cost and Insurance", named=1.0),
            "the pages here do not answer questions about cost and insurance",
        ),
        (evidence(outside="Choosing a Doctor"), "the question is outside this collection"),
        (evidence(), "the question is outside this collection"),
    ],
)
def test_a_question_below_the_threshold_is_not_covered_and_says_why(found: Evidence, reason: str) -> None:
    verdict = judge(found, calibration(covered=0.2, confidence=0.1))

    assert (verdict.covered, verdict.reason) == (False, reason)
    assert verdict.confidences == (0.1, 0.1)


def test_a_likely_question_is_covered_even_with_a_name_the_model_weighs_little() -> None:
    verdict = judge(evidence(absent="LASIK"), calibration(covered=0.9, confidence=0.8))

    assert (verdict.covered, verdict.reason, verdict.confidences) == (True, None, (0.8, 0.8))


def test_a_code_no_page_has_is_never_covered() -> None:
    verdict = judge(evidence(code="31231"), calibration(covered=0.99))

    assert (verdict.covered, verdict.reason) == (False, "no page has the code 31231")


# The fitted models


def test_an_exported_model_gives_the_probabilities_scikit_learn_gives() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -1.0]
    y = (x[:, 0] + 0.2 * x[:, 1] + rng.normal(size=200) > 0.6).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)

    exported = _logistic(pipeline, ("a", "b", "c"))

    np.testing.assert_allclose(exported.probability(x), pipeline.predict_proba(x)[:, 1], atol=1e-9)
    assert Logistic.from_dict(json.loads(json.dumps(exported.__dict__))) == exported


def test_expected_calibration_error_weighs_each_bin_by_its_size() -> None:
    confidence = np.array([0.05, 0.05, 0.95, 0.95, 0.95, 0.95])
    right = np.array([0, 0, 1, 1, 1, 0])

    # bin 0: |0.05 - 0| over 2 questions; bin 9: |0.95 - 0.75| over 4
    assert expected_calibration_error(confidence, right) == pytest.approx((2 * 0.05 + 4 * 0.2) / 6)


def observations(collection: str, rng: np.random.Generator, n: int = 120) -> list[Observation]:
    """Questions whose first feature tells answerable ones from the rest, noisily."""
    out = []
    for i in range(n):
        answerable = i % 3 != 0
        question = (
            rng.normal(size=len(QUESTION_FEATURES)) + (3.0 if answerable else -3.0) * np.eye(len(QUESTION_FEATURES))[0]
        )
        results = rng.normal(size=(3, len(RESULT_FEATURES)))
        right = (answerable and results[0, 0] > -0.5, False, False)
        split = "dev" if i % 10 < 7 else "heldout"
        out.append(
            Observation(
                collection, f"{collection} {i}", "", split, answerable, Evidence(tuple(question), results), right
            )
        )
    return out


def test_fitting_flags_few_answerable_questions_of_the_other_collections() -> None:
    rng = np.random.default_rng(3)
    found = [o for name in ("a", "b", "c") for o in observations(name, rng)]

    fitted = fit([o for o in found if o.split == "dev"])
    flagged = [not judge(o.evidence, fitted).covered for o in found if o.answerable]

    assert fitted.fitted_on == ("a", "b", "c")
    assert np.mean(flagged) <= FLAG_ANSWERABLE + 0.03
    unanswerable = [not judge(o.evidence, fitted).covered for o in found if not o.answerable]
    assert np.mean(unanswerable) >= 0.8


def test_each_collection_is_judged_by_models_fitted_without_it() -> None:
    rng = np.random.default_rng(5)
    found = [o for name in ("a", "b", "c") for o in observations(name, rng)]

    results = leave_one_out(found)

    assert {name: r.calibration.fitted_on for name, r in results.items()} == {
        "a": ("b", "c"),
        "b": ("a", "c"),
        "c": ("a", "b"),
    }
    assert all(o.split == "heldout" and o.collection == name for name, r in results.items() for o in r.tested)


def test_the_coverage_model_is_as_regularised_as_the_other_collections_find_best() -> None:
    rng = np.random.default_rng(2)
    answerable = (np.arange(60) % 3 != 0).astype(np.int64)
    x = rng.normal(size=(60, 16))
    x[:, 0] += np.where(answerable == 1, 0.6, -0.6)  # one weak signal among noise
    groups = np.array(list("abcd") * 15)

    model, threshold = _coverage(x, answerable, groups)

    held = {c: _auroc(_out_of_fold(x, answerable, groups, c=c), answerable) for c in C_VALUES}
    assert held[model[-1].C] == max(held.values())
    assert held[model[-1].C] > min(held.values())
    assert 0.0 < threshold < 1.0


def test_the_shipped_models_read_back_and_name_their_features() -> None:
    shipped = Calibration.bundled()

    assert shipped.coverage.features == QUESTION_FEATURES
    assert shipped.confidence.features == QUESTION_FEATURES + RESULT_FEATURES
    assert 0.0 < shipped.threshold < 1.0


# The contract: API, CLI


def test_every_result_has_a_confidence_and_the_answer_says_whether_it_is_covered(client: TestClient) -> None:
    body = client.get("/search", params={"q": "knee replacement recovery", "k": 3}).json()

    assert isinstance(body["covered"], bool)
    assert body["reason"] is None if body["covered"] else isinstance(body["reason"], str)
    assert all(0.0 <= r["confidence"] <= 1.0 for r in body["results"])


def test_a_question_about_a_code_no_page_has_is_answered_with_the_closest_pages(client: TestClient) -> None:
    body = client.get("/search", params={"q": "CPT 31231 risks", "k": 3}).json()

    assert (body["covered"], body["reason"]) == (False, "no page has the code 31231")
    assert len(body["results"]) == 3


def test_the_openapi_schema_documents_coverage_and_confidence(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    response, passage = schemas["SearchResponse"], schemas["PassagePublic"]

    assert {"covered", "reason"} <= set(response["required"])
    assert response["properties"]["covered"]["type"] == "boolean"
    assert {t["type"] for t in response["properties"]["reason"]["anyOf"]} == {"string", "null"}
    confidence = passage["properties"]["confidence"]
    assert (confidence["type"], confidence["minimum"], confidence["maximum"]) == ("number", 0.0, 1.0)
    assert "confidence" in passage["required"]


def test_the_command_line_says_when_a_question_is_not_covered(
    tiny_index: Path, fake_embedder: FakeEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["search", "CPT 31231 risks", "-k", "2", "--index", str(tiny_index)], embedder=fake_embedder)

    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == "Not covered: no page has the code 31231. Closest pages:"
    assert out[1].startswith(" 1. ") and "%" in out[1]


def test_the_command_line_gives_coverage_in_json(
    tiny_index: Path, fake_embedder: FakeEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["search", "CPT 31231 risks", "-k", "2", "--index", str(tiny_index), "--json"], embedder=fake_embedder)

    body = json.loads(capsys.readouterr().out)
    assert (body["covered"], body["reason"]) == (False, "no page has the code 31231")
    assert [r["rank"] for r in body["results"]] == [1, 2]
