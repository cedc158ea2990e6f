"""Builds that show their work: every stage of `procqa index` is named in the log with its
count and seconds, long stages report as they go, and the build report gives seconds per stage."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from procqa import cli
from procqa.index import STAGES

SECTIONS = ("Summary", "Indications", "Preparation", "Procedure", "Risks", "Recovery", "Follow-up", "Costs", "Diet")
SENTENCE = "Step {n} of the {name} takes {m} minutes and the care team checks the {part} before going on."


def long_section_collection(folder: Path, procedures: int) -> int:
    """JSON Lines procedures of long sections (twelve sentences each); returns the passage count."""
    folder.mkdir()
    parts = ("wrist", "knee", "airway", "bowel", "spine", "skin")
    for number in range(procedures):
        sections = [
            {
                "name": name,
                "text": " ".join(
                    SENTENCE.format(n=n, name=f"procedure {number}", m=n * 5 + number % 7, part=parts[(n + number) % 6])
                    for n in range(12)
                ),
            }
            for name in SECTIONS
        ]
        record = {
            "title": f"Procedure {number}",
            "code": str(10000 + number),
            "code_system": "CPT",
            "sections": sections,
        }
        with (folder / f"procedures-{number // 100:02d}.jsonl").open("a") as handle:  # files under the size limit
            handle.write(json.dumps(record) + "\n")
    return procedures * len(SECTIONS)


def test_every_stage_of_a_large_build_shows_its_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    passages = long_section_collection(tmp_path / "corpus", 1112)
    assert passages >= 10_000
    caplog.set_level(logging.INFO, logger="procqa")

    status = cli.main(
        ["index", "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "index")], embedder=FakeEmbedder()
    )

    assert status == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "procqa"]
    for stage in STAGES:
        done = [line for line in lines if re.fullmatch(rf"{stage}: \d+ \w+ in \d+\.\d\ds(, [\d,]+ \w+/s)?", line)]
        assert len(done) == 1, (stage, lines)
    assert f"passages: {passages} texts in" in "\n".join(lines)
    assert f"dense index: {passages} passages in" in "\n".join(lines)
    # a long stage also says how far it is, at each tenth
    going = [int(m[1]) for line in lines if (m := re.fullmatch(rf"passages: (\d+)/{passages}", line))]
    assert len(going) == 9 and going == sorted(going)
    out = capsys.readouterr().out
    for stage in STAGES:
        assert re.search(rf"\b{stage} \d+\.\d\ds\b", out), stage
