"""Answer units embedded in their passage's context (late chunking): token spans and windows,
builds that pool units out of the passage's own pass and reuse them by the passage's key,
the answer@1 measure and ranking through the candidate path in `procqa eval`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, FakeEmbedder, searcher_of

from procqa import cli
from procqa.errors import ProcqaError
from procqa.evaluation.measures import ANSWER1, answer_found, answer_measures
from procqa.evaluation.questions import parse_questions
from procqa.index import load
from procqa.index.vectors import ALONE, IN_CONTEXT
from procqa.ingest.chunking import chunk
from procqa.ingest.corpus import read_corpus
from procqa.pooling import Span, token_ranges, unit_spans, windows
from procqa.ranking import RankingConfig, build_index
from procqa.ranking.units import pruned_units, unit_reach


class ContextEmbedder(FakeEmbedder):
    """The fake embedder that also 'pools' each unit in context: the unit's words and its
    passage's first word, so a unit's vector differs from the unit embedded alone."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("embed", len(texts)))
        return super().embed(texts)

    def embed_in_context(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(("in context", len(texts)))
        units = [f"{t.split()[0]} {t[s:e]}" for t, group in zip(texts, spans, strict=True) for s, e in group]
        return super().embed(texts), super().embed(units)


def test_unit_spans_find_each_unit_in_the_embedded_text() -> None:
    passage = chunk(read_corpus(TINY).procedures)[1]
    spans = unit_spans(len(passage.embed_text) - len(passage.text), passage.units)
    assert [passage.embed_text[s:e] for s, e in spans] == list(passage.units)


def test_token_ranges_leave_out_special_tokens_and_cover_a_unit_whole() -> None:
    # [CLS] "knee" "." "it" "hurts" [SEP] over "knee. it hurts"
    offsets = [(0, 0), (0, 4), (4, 5), (6, 8), (9, 14), (0, 0)]
    assert token_ranges(offsets, [(0, 5), (6, 14), (14, 14)]) == [(1, 3), (3, 5), (0, 0)]


def test_a_short_passage_is_one_window_holding_every_unit() -> None:
    ids = [101, 7, 8, 9, 10, 11, 102]
    (window,) = windows(0, ids, [(3, 5), (5, 6)], head=3, size=16)
    assert window.first and window.ids == tuple(ids) and window.units == ((0, 3, 5), (1, 5, 6))


def test_a_long_passage_reads_its_tail_in_windows_that_keep_the_heading() -> None:
    # heading tokens 1, 2; six units of four tokens each; a window of 12 tokens
    ids = [101, 1, 2, *range(10, 34), 102]
    ranges = [(3 + 4 * u, 7 + 4 * u) for u in range(6)]
    out = windows(0, ids, ranges, head=3, size=12)
    first, *rest = out
    assert first.first and first.ids == (*ids[:11], 102) and first.units == ((0, 3, 7), (1, 7, 11))
    assert all(len(w.ids) <= 12 and w.ids[:3] == (101, 1, 2) and w.ids[-1] == 102 for w in out)
    assert [u for w in out for u, _, _ in w.units] == list(range(6))
    for window in rest:
        for unit, start, end in window.units:
            assert window.ids[start:end] == tuple(ids[ranges[unit][0] : ranges[unit][1]])


def test_a_build_pools_units_in_context_and_a_rebuild_reuses_them(tmp_path: Path) -> None:
    loaded = read_corpus(TINY)
    passages = chunk(loaded.procedures)
    embedder = ContextEmbedder()
    report = build_index(loaded.procedures, passages, embedder, tmp_path / "index", units=IN_CONTEXT)
    data = load(tmp_path / "index")
    assert data.manifest["unit_vectors"] == IN_CONTEXT
    assert ("embed", sum(len(p.units) for p in passages)) not in embedder.calls
    units = [f"{p.embed_text.split()[0]} {u}" for p in passages for u in p.units]
    np.testing.assert_allclose(data.units, FakeEmbedder().embed(units), atol=1e-6)
    assert report.embedded == len({p.embed_text for p in passages}) + len(units)

    embedder.calls.clear()
    again = build_index(loaded.procedures, passages, embedder, tmp_path / "index", units=IN_CONTEXT)
    assert again.embedded == 0 and not [c for c in embedder.calls if c[0] == "in context"]


def test_units_embedded_alone_are_embedded_again_in_context(tmp_path: Path) -> None:
    loaded = read_corpus(TINY)
    passages = chunk(loaded.procedures)
    embedder = ContextEmbedder()
    build_index(loaded.procedures, passages, embedder, tmp_path / "index", units=ALONE)
    assert load(tmp_path / "index").manifest["unit_vectors"] == ALONE
    report = build_index(loaded.procedures, passages, embedder, tmp_path / "index", units=IN_CONTEXT)
    assert report.embedded == len({p.embed_text for p in passages}) + sum(len(p.units) for p in passages)
    assert load(tmp_path / "index").manifest["unit_vectors"] == IN_CONTEXT


def test_an_unknown_way_of_embedding_units_lists_the_valid_ones(tmp_path: Path) -> None:
    loaded = read_corpus(TINY)
    with pytest.raises(ProcqaError, match="valid: context, alone"):
        build_index(loaded.procedures, chunk(loaded.procedures), FakeEmbedder(), tmp_path, units="sentence")
    with pytest.raises(ProcqaError, match="cannot embed answer units in context"):
        build_index(loaded.procedures, chunk(loaded.procedures), FakeEmbedder(), tmp_path, units=IN_CONTEXT)


def test_an_embedder_without_context_embeds_units_alone(tiny_index: Path) -> None:
    assert load(tiny_index).manifest["unit_vectors"] == ALONE


def test_units_are_embedded_in_context_above_the_configured_size(tmp_path: Path) -> None:
    loaded = read_corpus(TINY)
    passages = chunk(loaded.procedures)
    for above, mode in ((len(passages), ALONE), (len(passages) - 1, IN_CONTEXT)):
        config = RankingConfig(context_units_above=above)
        build_index(loaded.procedures, passages, ContextEmbedder(), tmp_path / mode, config=config)
        assert load(tmp_path / mode).manifest["unit_vectors"] == mode


def test_the_highlighted_unit_is_the_gold_answer_when_either_holds_the_other() -> None:
    assert answer_found("Recovery Time: Usually  six weeks.", "usually six weeks.")
    assert answer_found("It takes six weeks.", "It takes six weeks. Driving after four.")
    assert not answer_found("Driving after four.", "It takes six weeks.")
    assert not answer_found("", "It takes six weeks.")


def test_answer_at_1_applies_to_labelled_questions_of_a_highlighting_ranker() -> None:
    passages = chunk(read_corpus(TINY).procedures)
    lines = [
        json.dumps({"question": "how long", "doc": "Asthma", "section": "Symptoms", "answer": "Wheezing"}),
        json.dumps({"question": "what", "doc": "Asthma", "section": "Symptoms"}),
    ]
    labelled, bare = parse_questions(lines, passages, source="q.jsonl")
    assert labelled.answer == "Wheezing" and bare.answer is None
    top = [passages[next(iter(labelled.relevant))]]
    assert answer_measures(labelled, top, "Wheezing, a whistling sound")[ANSWER1] == 1.0
    assert answer_measures(labelled, top, "Coughing at night")[ANSWER1] == 0.0
    assert ANSWER1 not in answer_measures(labelled, top) and ANSWER1 not in answer_measures(bare, top, "x")


def test_procqa_eval_reports_answer_at_1_and_can_force_the_candidate_path(tiny_index: Path, tmp_path: Path) -> None:
    passages = load(tiny_index).passages
    answer = next(p for p in passages if p.title == "Asthma" and p.section == "Symptoms").units[0]
    questions = tmp_path / "questions.jsonl"
    question = {"question": "what are the signs of asthma", "doc": "Asthma", "section": "Symptoms"}
    questions.write_text(json.dumps({**question, "answer": answer}) + "\n")
    for flags, out in (([], tmp_path / "full"), (["--force-candidates"], tmp_path / "candidates")):
        argv = ["eval", "--questions", str(questions), "--index", str(tiny_index), "--out", str(out), *flags]
        assert cli.main(argv, embedder=FakeEmbedder()) == 0
        record = json.loads((out / "eval.json").read_text())
        assert record["systems"]["procqa"]["splits"]["all"][ANSWER1] is not None
        assert record["systems"]["bm25"]["splits"]["all"][ANSWER1] is None
        assert record["ranking_config"]["full_scan"] == (0 if flags else RankingConfig().full_scan)


def test_pruned_units_keep_the_best_scores_of_scoring_every_unit() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lengths = rng.integers(0, 6, size=400)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    units = np.repeat(vectors, lengths, axis=0) + 0.3 * rng.normal(size=(int(offsets[-1]), 16)).astype(np.float32)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    query = vectors[3] + 0.5 * rng.normal(size=16).astype(np.float32)
    query /= np.linalg.norm(query)

    def best(rows: np.ndarray) -> np.ndarray:
        return np.array(
            [(units[offsets[r] : offsets[r + 1]] @ query).max(initial=-1) if lengths[r] else 0 for r in rows]
        )

    reach = unit_reach(vectors, units, offsets)
    assert reach is not None and (reach[lengths == 0] == -1).all()
    dense = vectors @ query
    ceiling = np.where(reach >= 0, np.minimum(dense + reach, 1.0), 0.0)
    assert (best(np.arange(400)) <= ceiling + 1e-5).all()
    partial = 1.5 * dense + rng.uniform(0, 1, size=400)
    scored: list[int] = []

    def counting(picked: np.ndarray) -> np.ndarray:
        scored.extend(picked.tolist())
        return best(picked)

    pruned = partial + 1.5 * pruned_units(partial, ceiling, counting, weight=1.5, exact=10, first=16)
    full = partial + 1.5 * best(np.arange(400))
    top = np.argsort(-full, kind="stable")[:10]
    assert np.argsort(-pruned, kind="stable")[:10].tolist() == top.tolist()
    np.testing.assert_allclose(pruned[top], full[top], atol=1e-6)
    assert len(scored) < 400


def test_a_searcher_scoring_few_units_ranks_as_one_scoring_all(tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    few = searcher_of(tiny_index, fake_embedder, RankingConfig(unit_rows=2, unit_exact=5))
    every = searcher_of(tiny_index, fake_embedder, RankingConfig(unit_rows=10**9))
    assert few.features.unit_reach is not None
    for query in ("how long is recovery", "is a colonoscopy painful", "asthma inhaler side effects"):
        one, two = few.search(query, k=5), every.search(query, k=5)
        assert [(h.passage.id, round(h.score, 5), h.answer) for h in one] == [
            (h.passage.id, round(h.score, 5), h.answer) for h in two
        ]


@pytest.mark.slow
def test_the_model_pools_units_from_the_passage_pass_and_reads_a_long_tail_in_windows() -> None:
    from procqa.embedding import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    short = "Knee replacement. Recovery: Most people walk the next day.\nDriving is usually safe after six weeks."
    sentences = [f"Sentence {i} says the wound is checked on day {i} by the nurse." for i in range(40)]
    long = "Knee replacement. Recovery: " + "\n".join(sentences)
    texts = [short, long]
    spans = [unit_spans(len("Knee replacement. Recovery: "), short.split(": ", 1)[1].split("\n"))]
    spans.append(unit_spans(len("Knee replacement. Recovery: "), sentences))
    passages, units = model.embed_in_context(texts, spans)
    np.testing.assert_allclose(passages, model.embed(texts), atol=1e-5)
    assert units.shape == (42, 384)
    np.testing.assert_allclose(np.linalg.norm(units, axis=1), 1.0, atol=1e-5)
    alone = model.embed(["Driving is usually safe after six weeks.", sentences[-1]])
    assert float(units[1] @ alone[0]) > 0.6 and float(units[-1] @ alone[1]) > 0.6
