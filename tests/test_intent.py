"""What section intent learns from: the canonical examples, common health-page headings and
what a collection writes under its own headings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, build_index, searcher_of

from procqa.documents import Procedure, Section, Unit
from procqa.ingest.sections import CANONICAL, canonical_section, heading_info, heading_key, known_heading, section_info
from procqa.ranking import RankingConfig
from procqa.ranking.features import Examples
from procqa.ranking.intent import SectionIntent, intent_texts, spread
from procqa.ranking.kinds import merged

MAX_HEADINGS = RankingConfig().max_headings
WRITTEN_EXAMPLES = RankingConfig().written_examples


def written(section: str, *units: str, heading: str = "") -> Procedure:
    """A page with these answer units under one section (written under `heading`)."""
    return Procedure(
        "p", "P", None, None, (Section(section, tuple(map(Unit, units)), 1, 2, heading or section),), "p.md"
    )


def examples_of(label: str, labels: tuple[str, ...], texts: tuple[str, ...]) -> list[str]:
    return [text for name, text in zip(labels, texts, strict=True) if name == label]


def test_a_heading_procqa_does_not_know_learns_from_what_is_written_under_it() -> None:
    labels, texts = intent_texts(
        [written("Aftermath", "Expect some bruising."), written("Aftermath", "Rest for a day.")]
    )
    assert examples_of("Aftermath", labels, texts) == [
        "aftermath",
        "what are the aftermath",
        "tell me about the aftermath",
        "aftermath information",
        "what about aftermath",
        "Expect some bruising.",
        "Rest for a day.",
    ]


def test_a_variant_of_a_common_heading_borrows_its_examples_and_keeps_its_name() -> None:
    labels, texts = intent_texts([written("Signs and Symptoms", "A red rash.")])
    own = examples_of("Signs and Symptoms", labels, texts)
    assert "Symptoms" not in labels
    assert set(heading_info()["Symptoms"].examples) <= set(own)
    assert own[-1] == "A red rash."


def test_canonical_sections_learn_only_from_their_curated_examples() -> None:
    labels, texts = intent_texts([written("Recovery", "Rest for a week.")])
    assert "Rest for a week." not in examples_of("Recovery", labels, texts)
    assert set(labels) == set(CANONICAL)


def test_a_canonical_section_worded_its_own_way_learns_from_its_text_too() -> None:
    labels, texts = intent_texts([written("Risks and Complications", "A dry cough is common.", heading="Side Effects")])
    assert examples_of("Risks and Complications", labels, texts)[-1] == "A dry cough is common."


def test_only_the_headings_written_most_often_get_an_intent_of_their_own() -> None:
    passages = [written(f"Heading {i:03d}", "text") for i in range(MAX_HEADINGS + 10) for _ in range(1 + i % 3)]
    labels, _ = intent_texts(passages)
    own = set(labels) - set(CANONICAL)
    assert len(own) == MAX_HEADINGS
    assert {f"Heading {i:03d}" for i in range(MAX_HEADINGS + 10) if i % 3 == 2} <= own  # written three times


def test_a_heading_written_often_lends_an_even_spread_of_its_units() -> None:
    units = [f"unit {i}" for i in range(1000)]
    picked = spread(units, WRITTEN_EXAMPLES)
    assert len(picked) == WRITTEN_EXAMPLES
    assert picked[0] == "unit 0" and picked[-1] == "unit 999"
    assert spread(units[:3], WRITTEN_EXAMPLES) == units[:3]


def test_common_headings_neither_shadow_nor_share_a_variant() -> None:
    variants = [heading_key(name) for info in heading_info().values() for name in (info.name, *info.aliases)]
    assert len(variants) == len(set(variants))
    for info in heading_info().values():
        for name in (info.name, *info.aliases):
            assert canonical_section(name) is None, name
            assert known_heading(name) is info
    assert not set(heading_info()) & set(section_info())


@pytest.fixture
def clinic(tmp_path: Path) -> Path:
    """Two condition pages with headings of their own."""
    corpus = tmp_path / "clinic"
    corpus.mkdir()
    pages = [("Gout", "a hot swollen big toe", "uric acid"), ("Shingles", "a band of blisters", "swab")]
    for name, sign, test in pages:
        (corpus / f"{name.lower()}.md").write_text(
            f"# {name}\n\n## Signs and Symptoms\nMost people notice {sign}.\n\n"
            f"## Exams and Tests\nA {test} test confirms it.\n\n## Outlook\nMost people get better.\n",
            encoding="utf-8",
        )
    return corpus


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("can a doctor tell just by looking", "Exams and Tests"),
        ("how do i know if i have it", "Signs and Symptoms"),
        ("will it come back", "Outlook"),
    ],
)
def test_questions_find_a_collections_own_headings(
    clinic: Path, tmp_path: Path, fake_embedder: FakeEmbedder, question: str, section: str
) -> None:
    searcher = searcher_of(build_index(clinic, tmp_path / "index", fake_embedder), fake_embedder)
    assert searcher.search(question, k=1)[0].passage.section == section


@pytest.mark.parametrize(
    ("heading", "known"),
    [
        ("Signs and Symptoms", "Symptoms"),
        ("Symptoms of Shingles", "Symptoms"),
        ("How Is Gout Diagnosed?", "Diagnosis"),
        ("Is Flu Contagious?", "Transmission"),
        ("Recovery After Knee Surgery", "Recovery"),
        ("Pain Relief Steps", None),  # 'steps' names Procedure Description in one word of three
        ("Aftermath", None),
    ],
)
def test_a_heading_is_known_by_its_variants_or_by_naming_one(heading: str, known: str | None) -> None:
    info = known_heading(heading)
    assert (info.name if info else None) == known


def test_a_heading_folded_into_its_section_keeps_each_example_once() -> None:
    labels, keep = merged(
        ("Recovery", "Going home", "Going home", "Results"),
        ("rest", "rest", "drive", "rest"),
        {"Going home": "Recovery"},
    )
    assert labels == ("Recovery", "Recovery", "Results")
    assert keep.tolist() == [0, 2, 3]


def test_introductions_and_names_lend_intent_only_their_own_example_questions() -> None:
    summary = section_info()["Summary"]
    labels = ("Summary", "Summary", "Brand Names", "Brand Names", "Recovery", "Going home")
    texts = (
        summary.examples[0],
        "A hernia is a bulge in the groin.",
        "what are the brand names",
        "Glucophage, Fortamet",
        "when can I drive",
        "Rest for a week.",
    )
    examples = Examples(labels, texts, np.eye(6, dtype=np.float32), np.zeros((0, 6), np.float32), ())

    kept = examples.without_introductions()

    assert list(zip(kept.labels, kept.texts, strict=True)) == [
        ("Summary", summary.examples[0]),
        ("Brand Names", "what are the brand names"),
        ("Recovery", "when can I drive"),
        ("Going home", "Rest for a week."),
    ]
    assert kept.vectors.tolist() == np.eye(6)[[0, 2, 4, 5]].tolist()


def test_the_mean_over_many_questions_is_the_mean_of_each() -> None:
    rng = np.random.default_rng(0)
    examples = rng.normal(size=(12, 8)).astype(np.float32)
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    intent = SectionIntent(("a", "b", "c") * 4, examples)
    queries = examples[:5] + 0.1
    each = np.mean([intent.probabilities(q) for q in queries], axis=0)
    np.testing.assert_allclose(intent.mean_probabilities(queries), each, rtol=1e-5, atol=1e-6)
