"""Integration tests on the real bundled all-MiniLM-L6-v2 model (loads in a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, build_index
from fastapi.testclient import TestClient

from procqa.api import create_app
from procqa.embedding import OnnxModel, SentenceTransformerEmbedder, export
from procqa.evaluation.questions import read_questions
from procqa.index import load
from procqa.ingest.corpus import read_corpus
from procqa.ranking import RankingFeatures, Searcher
from procqa.ranking.intent import index_examples
from procqa.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(onnx_folder=tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def searcher(model: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    root = build_index(TINY, tmp_path_factory.mktemp("real") / "index", model)
    return Searcher(RankingFeatures.from_index(load(root, model_id=model.model_id)), model)


def test_the_bundled_model_gives_normalised_384_dimensional_vectors(model: SentenceTransformerEmbedder) -> None:
    vectors = model.embed(["how long is recovery", "is a colonoscopy painful"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


QUERIES = ["how long is recovery", "CPT 45378 risks", "will I be awake during a colonoscopy"]


def test_queries_embedded_by_onnx_runtime_get_the_vectors_torch_gives(model: SentenceTransformerEmbedder) -> None:
    assert model.onnx is not None
    torch = model.model.encode(QUERIES, normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(model.embed(QUERIES) - torch).max() < 1e-4


def test_an_exported_model_opens_without_torch(model: SentenceTransformerEmbedder) -> None:
    assert model.onnx is not None
    script = (
        "import sys; from pathlib import Path; from procqa.embedding import OnnxModel; "
        f"OnnxModel.open(Path({str(model.onnx_folder / (model.model_id + '.onnx'))!r})); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_damaged_onnx_export_is_exported_again(model: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(model.model_path, onnx_folder=tmp_path)
    embedder.__dict__["model"] = model.model  # the torch model, already loaded
    path = tmp_path / f"{model.model_id}.onnx"
    path.write_bytes(b"not a model")
    (tmp_path / f"{model.model_id}.json").write_text("{}")
    assert embedder.onnx is not None
    assert path.stat().st_size > 1_000_000
    assert np.abs(embedder.embed(QUERIES) - model.embed(QUERIES)).max() < 1e-4


def test_an_export_that_drifts_from_torch_is_refused(model: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    path = tmp_path / "drifted.onnx"
    export(model.model, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["vectors"][0][0] += 0.01
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="off torch's vectors"):
        OnnxModel.open(path)


def test_without_a_place_for_the_onnx_export_torch_embeds_everything(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the export folder should be")
    embedder = SentenceTransformerEmbedder(onnx_folder=tmp_path / "file")
    assert embedder.embed(QUERIES).shape == (3, 384)
    assert embedder.onnx is None


def collection(name: str, model: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    root = build_index(ROOT / "eval" / name / "corpus", tmp_path_factory.mktemp(name) / "index", model)
    return Searcher(RankingFeatures.from_index(load(root, model_id=model.model_id)), model)


@pytest.fixture(scope="module")
def conditions(model: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """Condition pages in Markdown with headings of their own, some of them common ones."""
    return collection("conditions", model, tmp_path_factory)


@pytest.fixture(scope="module")
def medicines(model: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """Medicine leaflets in Markdown whose headings procqa knows nothing of but 'Side Effects'."""
    return collection("medicines", model, tmp_path_factory)


@pytest.mark.parametrize(
    ("collection", "question", "procedure", "section"),
    [
        ("searcher", "how long is recovery after a knee replacement", "cpt-27447-total-knee-arthroplasty", "Recovery"),
        ("searcher", "CPT 45378 risks", "cpt-45378-diagnostic-colonoscopy", "Risks and Complications"),
        ("searcher", "will I be awake during a colonoscopy", "cpt-45378-diagnostic-colonoscopy", "Patient Experience"),
        (
            "searcher",
            "who performs the reinsertion of a spinal fixation device",
            "cpt-22849-reinsertion-of-spinal-fixation-device",
            "Personnel",
        ),
        ("searcher", "asthma symptoms", "asthma", "Symptoms"),
        # ICD-10-CM codes, with or without their dots
        ("conditions", "B02.9 treatment", "shingles", "Treatment"),
        ("conditions", "is E119 curable", "type-2-diabetes", "Outlook"),
        ("conditions", "icd-10 I10 what causes it", "high-blood-pressure", "Causes"),
    ],
)
def test_questions_find_their_procedure_and_section(
    request: pytest.FixtureRequest, collection: str, question: str, procedure: str, section: str
) -> None:
    searcher: Searcher = request.getfixturevalue(collection)
    top = searcher.search(question, k=3)[0]
    assert (top.passage.procedure_id, top.passage.section) == (procedure, section)


def test_the_answer_is_the_unit_that_answers(searcher: Searcher) -> None:
    top = searcher.search("how long does the knee replacement operation take", k=1)[0]
    assert top.passage.section == "Duration"
    assert top.answer in top.passage.text
    assert top.passage.text[top.answer_start : top.answer_end] == top.answer


def test_a_question_naming_no_procedure_ranks_by_section(searcher: Searcher) -> None:
    sections = [hit.passage.section for hit in searcher.search("how long is recovery", k=3)]
    assert sections == ["Recovery"] * 3


def test_the_shipped_index_serves_the_readme_example(model: SentenceTransformerEmbedder) -> None:
    settings = Settings(index=ROOT / "index", _env_file=None)
    with TestClient(create_app(settings, embedder=model)) as client:
        response = client.get("/search", params={"q": "how long is recovery", "k": 3})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["section"] for r in results] == ["Recovery"] * 3
    assert all(r["procedure"]["code_system"] == "CPT" and r["source"].startswith("corpus/") for r in results)


def test_the_shipped_index_was_built_from_the_shipped_corpus(model: SentenceTransformerEmbedder) -> None:
    data = load(Path(ROOT / "index"), model_id=model.model_id)
    assert data.manifest["procedures"] == len(list((ROOT / "corpus").glob("*.txt")))
    # the index stores its section-intent examples: after editing data/*.json, run `procqa index`
    assert (data.intent_labels, data.intent_texts) == index_examples(read_corpus(ROOT / "corpus").procedures)


@pytest.mark.parametrize(("name", "least"), [("conditions", 0.8), ("medicines", 0.7)])
def test_most_questions_about_other_collections_get_the_right_page_and_heading_first(
    request: pytest.FixtureRequest, name: str, least: float
) -> None:
    searcher: Searcher = request.getfixturevalue(name)
    benchmark = read_questions(ROOT / "eval" / name / "questions.jsonl", searcher.features.passages)
    firsts = [searcher.search(q.text, k=1)[0].passage.id in q.relevant for q in benchmark.questions]
    assert sum(firsts) / len(firsts) >= least  # dense retrieval alone: 0.57 and 0.51 (README, Evaluation)


@pytest.fixture(scope="module")
def hospital(model: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """Hospital web pages whose 'Going home' procqa knows nothing of by name."""
    return collection("hospital", model, tmp_path_factory)


def intent_label(searcher: Searcher, heading: str) -> str:
    f = searcher.features
    labels = {f.intent.names[f.passage_section[p.id]] for p in f.passages if p.heading == heading}
    assert len(labels) == 1
    return labels.pop()


def test_an_unknown_heading_whose_text_reads_as_recovery_answers_recovery_questions(hospital: Searcher) -> None:
    assert intent_label(hospital, "Going home") == "Recovery"
    assert intent_label(hospital, "Results") == "Results"  # its text reads as no one section


def test_unknown_headings_whose_text_reads_as_no_one_section_keep_their_own_intent(medicines: Searcher) -> None:
    assert intent_label(medicines, "Uses") == "Purpose"  # its name and its text both read as Purpose
    for heading in ("How to Take It", "Interactions", "Warnings", "Storage", "Before You Start"):
        assert intent_label(medicines, heading) == heading
