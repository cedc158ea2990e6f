"""Ranking behaviour on the tiny corpus with the deterministic fake embedder."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import FakeEmbedder, build_index, searcher_of

from procqa import cli
from procqa.errors import QueryError
from procqa.ranking import RankingConfig, Searcher, Weights

QUESTIONS = [
    "how long is recovery after a knee replacement",
    "CPT 45378 risks",
    "asthma symptoms",
    "carpal tunnel release recovery time",
    "who performs the reinsertion of a spinal fixation device",
    "how long does it take",
]


@pytest.fixture
def searcher(tiny_index: Path, fake_embedder: FakeEmbedder) -> Searcher:
    return searcher_of(tiny_index, fake_embedder)


def ranking(searcher: Searcher, question: str, **filters: str) -> list[tuple[str, str]]:
    return [(h.passage.procedure_id, h.passage.section) for h in searcher.search(question, k=5, **filters)]


def test_a_code_in_the_query_puts_that_procedure_first(searcher: Searcher) -> None:
    assert ranking(searcher, "CPT 45378 risks")[0] == ("cpt-45378-diagnostic-colonoscopy", "Risks and Complications")
    assert ranking(searcher, "27447")[0][0] == "cpt-27447-total-knee-arthroplasty"


def test_a_code_filter_keeps_to_one_procedure(searcher: Searcher) -> None:
    assert {p for p, _ in ranking(searcher, "how long is recovery", code="64721")} == {"more-1"}


def test_a_section_filter_keeps_to_one_section(searcher: Searcher) -> None:
    assert {s for _, s in ranking(searcher, "knee replacement", section="Recovery")} == {"Recovery"}


def test_a_section_filter_takes_the_heading_as_written_or_its_kind_in_any_case(searcher: Searcher) -> None:
    def found(section: str) -> set[tuple[str, str, str | None]]:
        hits = searcher.search("what can go wrong", k=20, section=section)
        return {(h.passage.title, h.passage.heading, h.passage.section_kind) for h in hits}

    # asthma.md words its risks section "Risks"; the procedure pages write "Risks and Complications"
    assert found("risks") == {("Asthma", "Risks", "Risks and Complications")}
    assert found("RISKS AND COMPLICATIONS") == {
        ("Asthma", "Risks", "Risks and Complications"),
        *{(p.title, "Risks and Complications", "Risks and Complications") for p in searcher.procedures[1:4]},
    }
    assert "Risks" in searcher.sections and "Risks and Complications" in searcher.sections


def test_procqa_search_prints_the_heading_as_written_and_its_kind(
    tiny_index: Path, fake_embedder: FakeEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "what can go wrong", "--section", "risks", "--index", str(tiny_index)]
    assert cli.main(argv, embedder=fake_embedder) == 0

    lines = [line for line in capsys.readouterr().out.splitlines() if "Asthma" in line]
    assert len(lines) == 1 and lines[0].endswith("/ Risks (Risks and Complications)")


def test_unknown_filters_name_the_valid_values(searcher: Searcher) -> None:
    with pytest.raises(QueryError, match="valid sections: .*Symptoms"):
        searcher.search("x", section="Aftermath")
    with pytest.raises(QueryError, match="no procedure has code '99999'"):
        searcher.search("x", code="99999")


def test_a_misspelt_name_still_finds_its_procedure(searcher: Searcher) -> None:
    assert ranking(searcher, "colonscopy risks")[0][0] == "cpt-45378-diagnostic-colonoscopy"


def test_the_answer_offsets_point_into_the_passage_text(searcher: Searcher) -> None:
    for hit in searcher.search("knee replacement recovery time", k=5):
        assert hit.passage.text[hit.answer_start : hit.answer_end] == hit.answer


@pytest.mark.parametrize("question", QUESTIONS)
def test_scoring_candidates_only_gives_the_full_scan_ranking(
    tiny_index: Path, fake_embedder: FakeEmbedder, question: str
) -> None:
    full = searcher_of(tiny_index, fake_embedder).search(question, k=3)
    candidates = searcher_of(tiny_index, fake_embedder, RankingConfig(full_scan=0)).search(question, k=3)
    assert [(h.passage.id, round(h.score, 5)) for h in candidates] == [(h.passage.id, round(h.score, 5)) for h in full]


def test_a_word_only_one_procedure_holds_counts_for_all_its_passages(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    corpus = tmp_path / "leaflets"
    corpus.mkdir()
    pages = {
        "metformin": "# Metformin\n## Pregnancy\nAsk your doctor if pregnant.\n## Brand Names\nGlucophage.\n",
        "gliclazide": "# Gliclazide\n## Pregnancy\nPregnant women take insulin.\n",
    }
    for name, text in pages.items():
        (corpus / f"{name}.md").write_text(text, encoding="utf-8")
    only_own_words = Weights(**{field.name: 0.0 for field in fields(Weights)} | {"own_word": 1.0})
    root = build_index(corpus, tmp_path / "index", fake_embedder)
    searcher = searcher_of(root, fake_embedder, RankingConfig(weights=only_own_words))
    hits = searcher.search("is glucophage ok while pregnant", k=3)  # 'pregnant': both hold it
    assert sorted((h.passage.title, h.passage.section, h.score) for h in hits) == [
        ("Gliclazide", "Pregnancy", 0.0),
        ("Metformin", "Brand Names", 1.0),
        ("Metformin", "Pregnancy", 1.0),
    ]


def test_a_filtered_search_over_more_than_20000_passages_returns_k_results(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    # 2,000 procedures of 11 sections; only one in 50 has a Personnel section, which neither
    # the query's words nor its best procedures would bring among the candidates
    sections = ["Summary", "Purpose", "Indications", "Preparation", "Duration", "Setting", "Benefits", "Recovery"]
    sections += ["Alternatives", "Patient Experience", "Risks and Complications"]
    lines = []
    for i in range(2_000):
        named = [*sections[:-1], "Personnel"] if i % 50 == 0 else sections
        body = [{"name": s, "text": f"Procedure {i} {s.lower()}: recovery takes weeks {i % 7}."} for s in named]
        lines.append(json.dumps({"title": f"Procedure {i}", "code": str(10_000 + i), "sections": body}))
    (tmp_path / "corpus").mkdir()
    for start in range(0, len(lines), 500):
        (tmp_path / "corpus" / f"{start}.jsonl").write_text("\n".join(lines[start : start + 500]) + "\n", "utf-8")
    searcher = searcher_of(build_index(tmp_path / "corpus", tmp_path / "index", fake_embedder), fake_embedder)
    assert len(searcher.features.passages) > searcher.config.full_scan

    hits = searcher.search("how long is recovery", k=10, section="Personnel")

    assert len(hits) == 10
    assert {h.passage.section for h in hits} == {"Personnel"}
