"""Procedure recognition: names from titles and Summaries, codes, misspellings, the residual."""

from __future__ import annotations

import numpy as np

from procqa.ranking.intent import SectionIntent, SectionWords
from procqa.ranking.matching import ProcedureMatcher, everyday_names, title_names

NAMES = [
    ["Total knee arthroplasty", "total knee replacement", "TKR"],
    ["Partial mastectomy (lumpectomy)", "Partial mastectomy", "lumpectomy"],
    ["Vasectomy"],
    ["Simple complete mastectomy", "total mastectomy", "breast removal surgery"],
]
CODES = ["27447", "19301", "55250", "19303"]


def matcher() -> ProcedureMatcher:
    return ProcedureMatcher(NAMES, CODES)


def test_everyday_names_come_from_cue_words_in_a_summary() -> None:
    summary = (
        "Laparoscopic tubal ligation, widely known as getting your tubes tied or female sterilization, "
        "permanently prevents pregnancy. It is commonly called a lap chole, which is short."
    )
    assert everyday_names(summary) == ["tubes tied", "female sterilization", "lap chole"]


def test_a_title_gives_its_bare_form_and_its_parenthesised_name() -> None:
    assert title_names("Diagnostic upper GI endoscopy (EGD)") == [
        "Diagnostic upper GI endoscopy (EGD)",
        "Diagnostic upper GI endoscopy",
        "EGD",
    ]


def test_a_full_name_in_the_query_scores_highest() -> None:
    scores = matcher().scores("how long is recovery after a total knee replacement")
    assert int(np.argmax(scores)) == 0
    assert scores[0] > 0.9


def test_a_misspelt_word_matches_its_closest_spelling_only() -> None:
    scores = matcher().scores("masectomy recovery")
    assert scores[2] == 0.0  # vasectomy is further from 'masectomy' than mastectomy is
    assert scores[3] > 0


def test_codes_are_found_as_words_of_their_own() -> None:
    assert matcher().code_matches("CPT 27447 risks") == [0]
    assert matcher().code_matches("1274470 risks") == []


def test_codes_of_any_shape_are_found_without_case_or_dots() -> None:
    m = ProcedureMatcher([["Shingles"], ["High blood pressure"], ["Hip replacement"]], ["B02.9", "I10", "0SR9019"])
    assert m.code_matches("b02.9 symptoms") == [0]
    assert m.code_matches("is B029 contagious?") == [0]
    assert m.code_matches("ICD-10 I10 treatment") == [1]
    assert m.code_matches("0SR9019 recovery") == [2]
    assert m.code_matches("i100 or b02 or 10") == []
    assert m.residual("ICD-10-CM I10 treatment", [0.0, 0.0, 0.0]) == "treatment"
    assert m.residual("B02.9 icd 10", [0.0, 0.0, 0.0]) == ""
    assert m.residual("b02.9 diagnosis code what condition is that", [0.0, 0.0, 0.0]) == "what condition is that"
    assert m.residual("diagnosis code for shingles", [0.0, 0.0, 0.0]) == "diagnosis code for shingles"  # no code named


def test_the_residual_drops_the_procedure_name_and_the_code() -> None:
    m = matcher()
    query = "total knee replacement how long off work"
    assert m.residual(query, m.scores(query)) == "how long off work"
    assert m.residual("CPT 19301 risks", [0.0, 0.0, 0.0, 0.0]) == "risks"


def test_the_residual_drops_small_words_inside_a_name_and_keeps_them_elsewhere() -> None:
    m = ProcedureMatcher([["Colonoscopy with biopsy"]], ["45380"])
    query = "colonoscopy with biopsy how long for results"
    assert m.residual(query, m.scores(query)) == "how long for results"
    query = "recovery with colonoscopy"
    assert m.residual(query, m.scores(query)) == "recovery with"


def test_a_query_naming_nothing_keeps_every_word() -> None:
    m = matcher()
    query = "how long is recovery"
    assert m.residual(query, m.scores(query)) == query


def test_section_intent_learns_labels_from_examples() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16)).astype(np.float32)
    examples = np.vstack([centres[0] + 0.1 * rng.normal(size=(5, 16)), centres[1] + 0.1 * rng.normal(size=(5, 16))])
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    intent = SectionIntent(("Recovery",) * 5 + ("Duration",) * 5, examples)
    query = centres[1] / np.linalg.norm(centres[1])
    probabilities = intent.probabilities(query)
    assert intent.names == ("Recovery", "Duration")
    assert probabilities[1] > 0.7 and abs(probabilities.sum() - 1) < 1e-5


def test_section_words_read_intent_from_one_telling_word() -> None:
    labels = ("Recovery",) * 3 + ("Risks and Complications",) * 3 + ("Preparation",) * 2
    texts = (
        "what restrictions do I have afterwards",
        "when can I drive again",
        "how long until I am back to normal",
        "what can go wrong",
        "what are the risks",
        "possible reactions and side effects",
        "how do I prepare",
        "prep the night before",
    )
    words = SectionWords(labels, texts)
    assert words.names == ("Recovery", "Risks and Complications", "Preparation")
    for question, section in [
        ("pacemaker arm restrictions", "Recovery"),
        ("transfusion reactions", "Risks and Complications"),
        ("adult circ prep", "Preparation"),
    ]:
        probabilities = words.probabilities(question)
        assert words.names[int(np.argmax(probabilities))] == section, question
        assert abs(float(probabilities.sum()) - 1) < 1e-5


def test_section_words_are_uniform_for_unknown_words() -> None:
    words = SectionWords(("Recovery", "Duration"), ("recovery time", "how long does it take"))
    assert words.probabilities("zzzz qqqq").tolist() == [0.5, 0.5]
    assert words.probabilities("").tolist() == [0.5, 0.5]
