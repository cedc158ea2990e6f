"""Rankings on the real model stay as recorded: the top 10 of a fixed set of questions from
every question set in eval/ (scripts/record_rankings.py wrote tests/data/rankings.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script

pytestmark = pytest.mark.slow
RECORDED = Path(__file__).parent / "data" / "rankings.json"


def test_every_question_set_ranks_its_recorded_questions_as_recorded(tmp_path: Path) -> None:
    recorded = json.loads(RECORDED.read_text("utf-8"))
    ranked = load_script("record_rankings").record(tmp_path)
    assert ranked.keys() == recorded.keys()
    for name, questions in recorded.items():
        changed = [q for q, top in questions.items() if ranked[name][q] != top]
        assert not changed, f"{name}: {len(changed)} of {len(questions)} questions rank differently: {changed[:3]}"
