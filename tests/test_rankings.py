"""Rankings on the real model stay as recorded: the top 10 of a fixed set of questions from
every question set in eval/ (scripts/record_rankings.py wrote tests/data/rankings.json)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
RECORDED = Path(__file__).parent / "data" / "rankings.json"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record_rankings", ROOT / "scripts" / "record_rankings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["record_rankings"] = module
    spec.loader.exec_module(module)
    return module


def test_every_question_set_ranks_its_recorded_questions_as_recorded(tmp_path: Path) -> None:
    recorded = json.loads(RECORDED.read_text("utf-8"))
    ranked = load_script().record(tmp_path)
    assert ranked.keys() == recorded.keys()
    for name, questions in recorded.items():
        changed = [q for q, top in questions.items() if ranked[name][q] != top]
        assert not changed, f"{name}: {len(changed)} of {len(questions)} questions rank differently: {changed[:3]}"
