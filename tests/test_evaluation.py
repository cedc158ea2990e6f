"""Evaluation: metrics worked out by hand, the held-out split, baselines, reports and `procqa eval`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder

from procqa import cli
from procqa.errors import ParseError
from procqa.evaluation.baselines import (
    CachingEmbedder,
    LexicalRanker,
    Ranked,
    SearcherRanker,
    baseline_rankers,
    baseline_text,
    cached_vectors,
    reciprocal_rank_fusion,
    top_k,
)
from procqa.evaluation.measures import by_kind, by_section, by_split, evaluate, misses, ranking_measures, summarise
from procqa.evaluation.questions import (
    HELDOUT,
    Benchmark,
    parse_questions,
    read_beir,
    read_questions,
    section_match,
    split_of,
)
from procqa.evaluation.report import markdown, side_by_side
from procqa.index import load

ROOT = Path(__file__).resolve().parent.parent
LOG2_3 = math.log2(3)

# Passage ids of the tiny corpus (tests/data/tiny), one passage per section.
ASTHMA_SYMPTOMS, SPINE_PREPARATION, SPINE_RECOVERY = 0, 6, 13
KNEE_RISKS, KNEE_RECOVERY = 24, 26
COLON_SUMMARY, COLON_PURPOSE, COLON_PREPARATION, COLON_RECOVERY = 29, 30, 32, 39
CARPAL_RECOVERY = 43

QUESTIONS = [
    {
        "question": "how long to recover from a knee replacement",
        "code": "27447",
        "sections": ["Recovery"],
        "kind": "everyday",
    },
    {"question": "how long is recovery", "code": None, "sections": ["Recovery"], "kind": "none"},
    {"question": "what are the signs of asthma", "doc": "Asthma", "section": "Symptoms"},
    {
        "question": "why have a colonoscopy and how to get ready",
        "doc": "cpt-45378-diagnostic-colonoscopy",
        "section": ["Purpose", "Preparation"],
    },
    {
        "question": "recovery after a procedure nobody indexed",
        "code": "99999",
        "sections": ["Recovery"],
        "kind": "code",
    },
]


class Scripted:
    """A ranker that answers each question with a ranking written in the test."""

    name = "scripted"

    def __init__(self, rankings: dict[str, list[int]]) -> None:
        self.rankings = rankings

    def rank(self, query: str, *, k: int) -> Ranked:
        ids = self.rankings.get(query, [])
        return [(pid, 1.0 / (rank + 1)) for rank, pid in enumerate(ids)][:k]


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return super().embed(texts)


def write_questions(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny(tiny_index: Path, tmp_path: Path) -> Benchmark:
    return read_questions(write_questions(tmp_path / "questions.jsonl", QUESTIONS), load(tiny_index).passages)


# The pure metric function, on hand-made mappings.


def test_gold_at_rank_two_scores_half_a_reciprocal_rank() -> None:
    measures = ranking_measures({"q": {"a": 1}}, {"q": {"b": 3.0, "a": 2.0, "c": 1.0}})
    assert measures["q"] == pytest.approx({"hit@1": 0.0, "hit@5": 1.0, "mrr@10": 0.5, "ndcg@10": 1 / LOG2_3})


def test_ndcg_of_two_relevant_at_ranks_one_and_three() -> None:
    measures = ranking_measures({"q": {"a": 1, "c": 1}}, {"q": {"a": 3.0, "b": 2.0, "c": 1.0}})
    assert measures["q"]["ndcg@10"] == pytest.approx(1.5 / (1 + 1 / LOG2_3))
    assert measures["q"]["mrr@10"] == 1.0


def test_graded_relevance_counts_in_ndcg() -> None:
    measures = ranking_measures({"q": {"a": 2, "c": 1}}, {"q": {"x": 3.0, "a": 2.0, "c": 1.0}})
    assert measures["q"]["ndcg@10"] == pytest.approx((2 / LOG2_3 + 0.5) / (2 + 1 / LOG2_3))


def test_a_query_without_a_run_or_beyond_k_scores_zero() -> None:
    deep = {f"d{i:02d}": float(20 - i) for i in range(11)}  # the relevant d10 comes 11th
    measures = ranking_measures(
        {"empty": {"a": 1}, "absent": {"a": 1}, "deep": {"d10": 1}}, {"empty": {}, "deep": deep}
    )
    zero = {"hit@1": 0.0, "hit@5": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0}
    assert measures == {"empty": zero, "absent": zero, "deep": zero}
    assert ranking_measures({"deep": {"d10": 1}}, {"deep": deep}, k=11)["deep"]["mrr@11"] == pytest.approx(1 / 11)


def test_k_below_five_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        ranking_measures({"q": {"a": 1}}, {"q": {"a": 1.0}}, k=3)


# Questions, relevance and the split.


def test_questions_map_to_procedure_section_pairs(tiny: Benchmark) -> None:
    relevant = [set(q.relevant) for q in tiny.questions]
    assert relevant == [
        {KNEE_RECOVERY},
        {SPINE_RECOVERY, KNEE_RECOVERY, COLON_RECOVERY, CARPAL_RECOVERY},
        {ASTHMA_SYMPTOMS},
        {COLON_PURPOSE, COLON_PREPARATION},
        set(),
    ]
    assert [q.procedures for q in tiny.questions[:3]] == [
        frozenset({"cpt-27447-total-knee-arthroplasty"}),
        None,
        frozenset({"asthma"}),
    ]
    assert [q.kind for q in tiny.questions] == ["everyday", "none", "", "", "code"]


def test_a_document_no_procedure_has_is_a_parse_error_with_its_line(tiny: Benchmark) -> None:
    lines = [
        '{"question": "fine", "code": null, "sections": ["Recovery"]}',
        "",
        '{"question": "x", "doc": "Nope", "section": "Recovery"}',
    ]
    with pytest.raises(ParseError, match=r"q\.jsonl:3: no procedure has the id or title 'Nope'"):
        parse_questions(lines, tiny.passages, source="q.jsonl")


def test_heldout_split_is_deterministic_and_about_thirty_percent() -> None:
    texts = [f"question number {i}" for i in range(2000)]
    splits = [split_of(t) for t in texts]
    assert splits == [split_of(t) for t in texts]
    assert 0.27 < splits.count(HELDOUT) / len(texts) < 0.33
    assert split_of("how long is recovery") == "heldout"
    assert split_of("will I be put to sleep") == "dev"


def test_the_development_set_holds_out_about_thirty_percent() -> None:
    lines = (ROOT / "eval" / "questions.jsonl").read_text("utf-8").splitlines()
    texts = [json.loads(line)["question"] for line in lines if line.strip()]
    assert 0.25 < sum(split_of(t) == HELDOUT for t in texts) / len(texts) < 0.35


# The runner on the tiny corpus, with rankings written by hand.


def test_evaluation_of_scripted_rankings_on_the_tiny_corpus(tiny: Benchmark) -> None:
    texts = [q.text for q in tiny.questions]
    ranker = Scripted(
        {
            texts[0]: [KNEE_RISKS, KNEE_RECOVERY, COLON_RECOVERY],  # gold second, right procedure first
            texts[1]: [SPINE_RECOVERY, KNEE_RECOVERY, SPINE_PREPARATION, COLON_RECOVERY, ASTHMA_SYMPTOMS],
            texts[2]: [],  # nothing found
            texts[3]: [COLON_PURPOSE, COLON_SUMMARY, COLON_PREPARATION],
        }
    )
    evaluation = evaluate(tiny, [ranker], k=10)
    outcomes = evaluation.outcomes["scripted"]
    assert [q.id for q in evaluation.unjudged] == ["q0005"]
    assert [o.question.id for o in outcomes] == ["q0001", "q0002", "q0003", "q0004"]
    assert outcomes[0].measures == pytest.approx(
        {"hit@1": 0, "hit@5": 1, "mrr@10": 0.5, "ndcg@10": 1 / LOG2_3, "procedure@1": 1, "section@1": 0}
    )
    # Four recovery passages are relevant; ranks 1, 2 and 4 hold three of them.
    dcg, ideal = 1 + 1 / LOG2_3 + 1 / math.log2(5), 1 + 1 / LOG2_3 + 0.5 + 1 / math.log2(5)
    assert outcomes[1].measures == pytest.approx(
        {"hit@1": 1, "hit@5": 1, "mrr@10": 1, "ndcg@10": dcg / ideal, "section@1": 1, "section_share@5": 0.6}
    )
    assert outcomes[2].measures == {"hit@1": 0, "hit@5": 0, "mrr@10": 0, "ndcg@10": 0, "procedure@1": 0, "section@1": 0}
    assert outcomes[3].measures["ndcg@10"] == pytest.approx(1.5 / (1 + 1 / LOG2_3))
    summary = summarise(outcomes, 10)
    assert summary["questions"] == 4
    assert summary["hit@1"] == 0.5
    assert summary["hit@5"] == 0.75
    assert summary["mrr@10"] == 0.625
    assert summary["procedure@1"] == pytest.approx(2 / 3)
    assert summary["section@1"] == 0.5
    assert summary["section_share@5"] == pytest.approx(0.6)
    assert [o.question.id for o in misses(outcomes)] == ["q0001", "q0003"]
    assert outcomes[0].first_relevant() == 2 and outcomes[2].first_relevant() is None
    assert by_section(outcomes) == {
        "Preparation": {"questions": 1, "hit@1": 1.0},
        "Purpose": {"questions": 1, "hit@1": 1.0},
        "Recovery": {"questions": 2, "hit@1": 0.5},
        "Symptoms": {"questions": 1, "hit@1": 0.0},
    }
    assert by_kind(outcomes) == {"everyday": {"questions": 1, "hit@1": 0.0}, "none": {"questions": 1, "hit@1": 1.0}}
    splits = by_split(outcomes, 10)
    assert splits["dev"]["questions"] + splits["heldout"]["questions"] == 4
    assert splits["heldout"]["questions"] == sum(split_of(t) == HELDOUT for t in texts[:4])


def test_baselines_and_procqa_run_side_by_side_on_the_tiny_corpus(
    tiny: Benchmark, tiny_index: Path, tmp_path: Path
) -> None:
    embedder = CachingEmbedder(FakeEmbedder())
    rankers = baseline_rankers(tiny.passages, embedder, cache=tmp_path / "cache")
    rankers.append(SearcherRanker(load(tiny_index), embedder))
    evaluation = evaluate(tiny, rankers, k=10)
    assert evaluation.systems == ("bm25", "dense", "rrf", "procqa")
    for outcomes in evaluation.outcomes.values():
        summary = summarise(outcomes, 10)
        assert summary["questions"] == 4
        assert all(0 <= summary[m] <= 1 for m in ("hit@1", "hit@5", "mrr@10", "ndcg@10"))
    table = side_by_side(evaluation)
    assert table.splitlines()[0].startswith("| system | questions | hit@1 | hit@5 | mrr@10 | ndcg@10 |")
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| bm25", "| dense", "| rrf", "| procqa"]
    report = markdown(evaluation, {"total": 1.0})
    assert "## procqa by split" in report and "## hit@1 by gold section" in report and "q0005" in report


# Baselines.


def test_baselines_read_title_heading_as_written_and_text(tiny: Benchmark) -> None:
    texts = [baseline_text(p) for p in tiny.passages]
    assert texts[ASTHMA_SYMPTOMS].startswith("Asthma. Symptoms: ")
    asthma_risks = next(p for p in tiny.passages if p.title == "Asthma" and p.section_kind == "Risks and Complications")
    assert baseline_text(asthma_risks).startswith("Asthma. Risks: ")  # the heading, not its kind
    ranker = LexicalRanker(texts)
    assert ranker.rank("whistling sound", k=3)[0][0] == ASTHMA_SYMPTOMS
    # "Asthma" is a title, in no passage's own text: the baselines find it through the title
    assert {tiny.passages[pid].title for pid, _ in ranker.rank("asthma", k=3)} == {"Asthma"}


def test_a_gold_section_matches_the_heading_as_written_or_its_kind(tiny: Benchmark) -> None:
    passages = tiny.passages
    asked = [
        {"question": "asthma risks", "doc": "Asthma", "section": "risks"},
        {"question": "asthma dangers", "doc": "Asthma", "section": "Risks and Complications"},
        {"question": "asthma adverse effects", "doc": "Asthma", "section": "Adverse Effects"},
        {"question": "asthma diet", "doc": "Asthma", "section": "Diet"},
    ]
    by_heading, by_kind, by_variant, neither = parse_questions(
        [json.dumps(r) for r in asked], passages, source="asked.jsonl"
    )

    risks = next(p.id for p in passages if p.title == "Asthma" and p.heading == "Risks")
    assert (by_heading.relevant, by_heading.matched_by) == ({risks: 1}, "heading")
    assert (by_kind.relevant, by_kind.matched_by) == ({risks: 1}, "kind")
    assert (by_variant.relevant, by_variant.matched_by) == ({risks: 1}, "kind")  # a variant of the kind
    assert (neither.relevant, neither.matched_by) == ({}, "")
    assert section_match(passages[risks], ["RISKS"]) == "heading"
    assert section_match(passages[risks], ["risks and complications"]) == "kind"
    assert section_match(passages[ASTHMA_SYMPTOMS], ["Risks"]) is None


def test_a_document_title_that_pages_share_names_them_all(tiny: Benchmark) -> None:
    shared = [replace(p, title="Knee") if p.code in ("27447", "45378") else p for p in tiny.passages]
    (question,) = parse_questions(
        [json.dumps({"question": "knee recovery", "doc": "knee", "section": "Recovery"})], shared, source="q.jsonl"
    )

    assert question.procedures == {"cpt-27447-total-knee-arthroplasty", "cpt-45378-diagnostic-colonoscopy"}
    assert set(question.relevant) == {KNEE_RECOVERY, COLON_RECOVERY}


def test_top_k_and_reciprocal_rank_fusion() -> None:
    scores = np.array([0.5, 0.9, 0.0, 0.9, 0.1], dtype=np.float32)
    assert [i for i, _ in top_k(scores, 3)] == [1, 3, 0]
    assert [i for i, _ in top_k(scores, 10, positive=True)] == [1, 3, 0, 4]
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=2, constant=60)
    assert fused == [(1, pytest.approx(1 / 61 + 1 / 62)), (3, pytest.approx(1 / 63 + 1 / 61))]


def test_caching_embedder_embeds_each_text_once_in_batches() -> None:
    inner = CountingEmbedder()
    embedder = CachingEmbedder(inner, batch_size=2)
    embedder.prime(["a", "b", "c", "a"])
    assert inner.calls == [["a", "b"], ["c"]]
    vectors = embedder.embed(["c", "d", "e", "a"])
    assert inner.calls[-1] == ["d", "e"]
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(["c", "d", "e", "a"]))


def test_searcher_ranker_lists_the_texts_its_searches_embed(tiny_index: Path) -> None:
    embedder = CachingEmbedder(CountingEmbedder())
    texts = SearcherRanker(load(tiny_index), embedder).requested(["knee replacement recovery", "how long is recovery"])
    assert texts[:2] == ["knee replacement recovery", "how long is recovery"]
    embedder.prime(texts)
    calls = len(embedder.embedder.calls)
    SearcherRanker(load(tiny_index), embedder).rank("knee replacement recovery", k=5)
    assert len(embedder.embedder.calls) == calls


def test_dense_vectors_are_cached_by_model_and_content(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    first = cached_vectors(["one text", "another"], inner, tmp_path)
    again = cached_vectors(["one text", "another"], inner, tmp_path)
    np.testing.assert_array_equal(first, again)
    assert len(inner.calls) == 1
    cached_vectors(["one text", "changed"], inner, tmp_path)
    assert len(inner.calls) == 2 and len(list(tmp_path.glob("dense-fake-bag-of-words@1-*.npy"))) == 2


# BEIR folders.


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Knee replacement", "text": "Metal and plastic parts replace the knee joint."},
        {"_id": "d2", "title": "Colonoscopy", "text": "A camera examines the large bowel."},
        {"_id": "d3", "title": "", "text": "Carpal tunnel release frees the median nerve at the wrist."},
    ]
    queries = [
        {"_id": "q1", "text": "bowel camera examination"},
        {"_id": "q2", "text": "median nerve wrist"},
        {"_id": "q3", "text": "a query nobody judged"},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq1\td1\t0\nq2\td3\t2\n")
    return folder


def test_beir_folder_becomes_one_passage_per_record(tmp_path: Path) -> None:
    bench = read_beir(write_beir(tmp_path / "tiny-beir"))
    assert bench.name == "tiny-beir" and bench.level == "document"
    assert [(p.id, p.procedure_id, p.text) for p in bench.passages] == [
        (0, "d1", "Knee replacement Metal and plastic parts replace the knee joint."),
        (1, "d2", "Colonoscopy A camera examines the large bowel."),
        (2, "d3", "Carpal tunnel release frees the median nerve at the wrist."),
    ]
    assert [(q.id, q.text, dict(q.relevant)) for q in bench.questions] == [
        ("q1", "bowel camera examination", {1: 1, 0: 0}),
        ("q2", "median nerve wrist", {2: 2}),
    ]
    evaluation = evaluate(bench, [LexicalRanker([p.text for p in bench.passages])], k=10)
    assert summarise(evaluation.outcomes["bm25"], 10)["hit@1"] == 1.0
    assert summarise(evaluation.outcomes["bm25"], 10)["procedure@1"] is None


def test_a_folder_without_qrels_is_not_a_beir_folder(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="not a BEIR folder"):
        read_beir(tmp_path)


# The command line.


@pytest.fixture
def fake_model() -> CountingEmbedder:
    return CountingEmbedder()


def test_procqa_eval_writes_the_reports_and_prints_the_table(
    tiny_index: Path, tmp_path: Path, fake_model: CountingEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    out = tmp_path / "reports"
    argv = ["eval", "--questions", str(questions), "--index", str(tiny_index), "--out", str(out)]
    assert cli.main(argv, embedder=fake_model) == 0
    printed = capsys.readouterr().out
    assert "| system | questions | hit@1 |" in printed and "| procqa | 4 |" in printed
    assert (out / "eval.md").read_text().startswith("# Retrieval evaluation: questions")
    assert (out / "hit1_by_section.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "eval.json").read_text())
    assert list(record["systems"]) == ["bm25", "dense", "rrf", "procqa"]
    assert record["questions"] == 4 and [q["id"] for q in record["unjudged"]] == ["q0005"]
    assert set(record["systems"]["procqa"]["splits"]) == {"all", "dev", "heldout"}
    for system, missed in record["misses"].items():
        hit1 = record["systems"][system]["splits"]["all"]["hit@1"]
        assert len(missed) == round(4 * (1 - hit1))
        assert all({"question", "gold", "top", "first_relevant_rank"} <= set(m) for m in missed)

    assert record["gold_sections_matched_by"] == {"heading": 4, "kind": 0}
    assert (
        "Gold sections matched 4 questions by the heading as written and 0 by its kind only."
        in (out / "eval.md").read_text()
    )

    # A second run takes the baselines' passage vectors from the cache in the out folder.
    passage_texts = {baseline_text(p) for p in load(tiny_index).passages}
    fake_model.calls.clear()
    assert cli.main(argv, embedder=fake_model) == 0
    assert not any(passage_texts & set(call) for call in fake_model.calls)


def test_procqa_eval_on_a_beir_folder(tmp_path: Path, fake_model: CountingEmbedder) -> None:
    out = tmp_path / "reports"
    assert cli.main(["eval", "--beir", str(write_beir(tmp_path / "beir")), "--out", str(out)], embedder=fake_model) == 0
    record = json.loads((out / "eval.json").read_text())
    assert list(record["systems"]) == ["bm25", "dense", "rrf"] and record["level"] == "document"
    assert (out / "hit1_by_section.png").exists()


def test_procqa_eval_refuses_k_below_five(tmp_path: Path, fake_model: CountingEmbedder) -> None:
    assert cli.main(["eval", "--beir", str(tmp_path), "--k", "3"], embedder=fake_model) == 1
