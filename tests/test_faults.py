"""Faults: a build killed at any point, damaged index files and a wrong model never serve wrong passages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TINY, FakeEmbedder, build_index
from fastapi.testclient import TestClient

from procqa.api import create_app
from procqa.errors import IndexCorruptError, IndexMismatchError
from procqa.index import IndexData, current_version, load, versions
from procqa.settings import Settings

HELPER = Path(__file__).parent / "fake_procqa.py"
TOKEN = "fault-token"
QUESTION = "How long is recovery after a knee replacement?"


@pytest.fixture
def root(tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    """An index of the tiny corpus with one version being served."""
    return build_index(TINY, tmp_path / "index", fake_embedder)


def helper_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `procqa` process on the fake embedder, with small batches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCQA_")}
    return {**env, "PROCQA_BATCH_SIZE": "8", **extra}


def index_command(root: Path) -> list[str]:
    return [sys.executable, str(HELPER), "index", "--corpus", str(TINY), "--out", str(root), "--full"]


def assert_still_serving(root: Path, old: IndexData) -> None:
    """CURRENT names the old version, which loads, verifies and holds the same passages."""
    assert (root / "CURRENT").read_text("utf-8").strip() == old.version
    data = load(root, model_id=FakeEmbedder.model_id)
    assert data.version == old.version
    assert data.passages == old.passages


def assert_next_build_succeeds(root: Path, old: IndexData) -> None:
    build_index(TINY, root, FakeEmbedder())
    new = load(root, model_id=FakeEmbedder.model_id)
    assert new.version > old.version
    assert new.passages == old.passages
    assert all(not v.name.startswith(".") for v in versions(root))


# Killing `procqa index`


@pytest.mark.parametrize("kill_at", ["embed:1", "embed:40", "verify", "point"])
def test_a_build_killed_at_a_step_leaves_the_served_version_intact(root: Path, tmp_path: Path, kill_at: str) -> None:
    old = load(root)

    done = subprocess.run(
        index_command(root),
        env=helper_env(tmp_path, PROCQA_TEST_KILL_AT=kill_at),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )

    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert_still_serving(root, old)
    leftovers = [p.name for p in (root / "versions").iterdir() if p.name.startswith(".tmp-")]
    if kill_at == "verify":
        assert len(leftovers) == 1  # written in full, never moved into place
    if kill_at == "point":
        assert [v.name for v in versions(root)][-1] > old.version  # complete, but CURRENT never named it
    assert_next_build_succeeds(root, old)


@pytest.mark.parametrize("delay", [0.0, 0.4, 1.0])
def test_a_build_killed_after_a_delay_leaves_the_served_version_intact(
    root: Path, tmp_path: Path, delay: float
) -> None:
    old = load(root)
    started = tmp_path / "started"
    env = helper_env(tmp_path, PROCQA_TEST_EMBED_DELAY="0.02", PROCQA_TEST_STARTED=str(started))

    with subprocess.Popen(index_command(root), env=env, cwd=tmp_path, stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 30
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.exists(), "the build never started embedding"
        time.sleep(delay)
        process.kill()
        process.wait(timeout=30)

    assert process.returncode == -signal.SIGKILL  # killed mid-build, not finished first
    assert_still_serving(root, old)
    assert_next_build_succeeds(root, old)


def test_a_build_killed_in_a_real_process_can_be_followed_by_the_cli(root: Path, tmp_path: Path) -> None:
    old = load(root)
    killed = subprocess.run(index_command(root), env=helper_env(tmp_path, PROCQA_TEST_KILL_AT="verify"), timeout=60)
    assert killed.returncode == -signal.SIGKILL

    done = subprocess.run(index_command(root), env=helper_env(tmp_path), cwd=tmp_path, capture_output=True, timeout=60)

    assert done.returncode == 0, done.stderr.decode()
    assert b"indexed 5 procedures, 44 passages" in done.stdout
    assert current_version(root).name > old.version


# Damaged files


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_passage(path: Path) -> None:
    lines = path.read_text("utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace('"text": "', '"text": "TAMPERED ', 1)
    path.write_text("".join(lines), "utf-8")


DAMAGE: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "truncated dense.faiss": ("dense.faiss", truncate, "checksum mismatch in dense.faiss"),
    "edited passages.jsonl": ("passages.jsonl", edit_passage, "checksum mismatch in passages.jsonl"),
    "deleted vectors.npy": ("vectors.npy", Path.unlink, "missing vectors.npy"),
    "emptied manifest.json": ("manifest.json", lambda p: p.write_text("[]"), "manifest.json is not an index manifest"),
}


def damage(folder: Path, how: str) -> str:
    """Damage one file of a version folder; returns what the error must say."""
    name, spoil, says = DAMAGE[how]
    spoil(folder / name)
    return says


@pytest.mark.parametrize("how", DAMAGE)
def test_load_detects_a_damaged_file_and_says_how_to_rebuild(root: Path, how: str) -> None:
    says = damage(current_version(root), how)

    with pytest.raises(IndexCorruptError) as error:
        load(root, model_id=FakeEmbedder.model_id)

    assert says in str(error.value)
    assert str(current_version(root)) in str(error.value)
    assert "rebuild it with `procqa index --full`" in str(error.value)


@pytest.mark.parametrize("how", ["truncated dense.faiss", "deleted vectors.npy"])
def test_load_without_verifying_still_refuses_unreadable_files(root: Path, how: str) -> None:
    damage(current_version(root), how)

    with pytest.raises(IndexCorruptError, match="cannot be read"):
        load(root, verify=False)


@pytest.mark.parametrize("how", DAMAGE)
def test_a_build_over_a_damaged_version_embeds_afresh_and_succeeds(root: Path, how: str) -> None:
    damaged = current_version(root)
    damage(damaged, how)

    build_index(TINY, root, FakeEmbedder())

    assert current_version(root) != damaged
    assert "TAMPERED" not in "".join(p.text for p in load(root).passages)


# The API over damaged indexes


@pytest.fixture
def admin_settings(root: Path) -> Settings:
    return Settings(index=root, corpus=TINY, admin_token=TOKEN, _env_file=None)


def started(settings: Settings, embedder: FakeEmbedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder=embedder)) as client:
        yield client


@pytest.mark.parametrize("how", DAMAGE)
def test_the_api_starts_unready_on_a_damaged_index(admin_settings: Settings, root: Path, how: str) -> None:
    says = damage(current_version(root), how)

    for client in started(admin_settings, FakeEmbedder()):
        ready = client.get("/ready")
        searched = client.get("/search", params={"q": QUESTION})
        alive = client.get("/health")

    assert alive.status_code == 200
    for response in (ready, searched):
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "index_unavailable"
        assert says in error["message"]
        assert "procqa index" in error["message"]


@pytest.mark.parametrize("how", DAMAGE)
def test_reloading_a_damaged_new_version_keeps_serving_the_old(admin_settings: Settings, root: Path, how: str) -> None:
    for client in started(admin_settings, FakeEmbedder()):
        before = client.get("/search", params={"q": QUESTION, "k": 44}).json()
        old = client.get("/ready").json()["version"]
        build_index(TINY, root, FakeEmbedder())
        says = damage(current_version(root), how)

        reloaded = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        after = client.get("/search", params={"q": QUESTION, "k": 44}).json()
        ready = client.get("/ready").json()

    assert reloaded.status_code == 409
    assert says in reloaded.json()["error"]["message"]
    assert f"still serving {old}" in reloaded.json()["error"]["message"]
    assert ready["version"] == old
    assert after["results"] == before["results"]
    assert "TAMPERED" not in str(after)


# A model other than the index's


class OtherModel(FakeEmbedder):
    model_id = "other-model@2"


def test_loading_with_another_model_is_refused_naming_both_and_the_fix(root: Path) -> None:
    with pytest.raises(IndexMismatchError) as error:
        load(root, model_id=OtherModel.model_id)

    message = str(error.value)
    assert f"built with model {FakeEmbedder.model_id}, but {OtherModel.model_id} is configured" in message
    assert "procqa index --full" in message


def test_the_api_is_unready_with_another_model(admin_settings: Settings) -> None:
    for client in started(admin_settings, OtherModel()):
        response = client.get("/search", params={"q": QUESTION})

    assert response.status_code == 503
    assert "procqa index --full" in response.json()["error"]["message"]
