"""scripts/loadtest.py: a short run against a real server on the tiny index, and its guard rails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import load_script

HELPER = Path(__file__).parent / "fake_procqa.py"


loadtest = load_script("loadtest")


def test_a_short_run_on_the_tiny_index_sees_no_server_or_connection_errors(tiny_index: Path, tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    argv = ["--spawn-index", str(tiny_index), "--procqa", f"{sys.executable} {HELPER}"]
    argv += ["--duration", "5", "--concurrency", "8", "--json", str(report)]

    status = loadtest.main(argv)

    summary = json.loads(report.read_text("utf-8"))
    assert status == 0
    assert summary["requests"] > 100
    assert summary["server_errors"] == 0
    assert summary["connection_errors"] == {}
    assert summary["unexpected"] == {}  # every hostile request got the status it should
    assert {"200", "404", "405", "413", "422"} <= set(summary["by_status"])
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]


def test_lost_connections_fail_the_run(tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    url = f"http://127.0.0.1:{loadtest.free_port()}"  # nothing listens there

    status = loadtest.main(
        ["--url", url, "--duration", "2", "--concurrency", "2", "--max-requests", "10", "--json", str(report)]
    )

    summary = json.loads(report.read_text("utf-8"))
    assert status == 1
    assert summary["requests"] == 10
    assert summary["connection_errors"] == {"ConnectError": 10}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.0.0.2:9", "http://localhost:8000", "http://[::1]:80"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert loadtest.loopback_problem(url) is None


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000", "http://example.org", "http://0.0.0.0:8000", "https://[2001:db8::1]/", "ftp://127.0.0.1"],
)
def test_other_hosts_are_refused_as_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        loadtest.main(["--url", url, "--duration", "1"])

    assert exit_info.value.code == 2
    assert loadtest.loopback_problem(url) in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["--duration", "0"], ["--duration", "7200"], ["--concurrency", "0"], ["--concurrency", "1000"]]
)
def test_runs_are_bounded(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        loadtest.main(argv)

    assert exit_info.value.code == 2
    assert "is not from" in capsys.readouterr().err


def test_summary_counts_statuses_and_takes_nearest_rank_percentiles() -> None:
    outcomes = [loadtest.Outcome("search", 200, None, ms / 1000, True) for ms in range(1, 101)]
    outcomes += [
        loadtest.Outcome("k=0", 422, None, 0.001, True),
        loadtest.Outcome("emoji", 500, None, 0.001, False),
        loadtest.Outcome("search", None, "ReadTimeout", 30.0, False),
    ]

    summary = loadtest.summarise(outcomes, 2.0)

    assert summary.requests == 103
    assert summary.by_status == {"200": 100, "422": 1, "500": 1}
    assert summary.server_errors == 1
    assert summary.connection_errors == {"ReadTimeout": 1}
    assert summary.unexpected == {"emoji": {"500": 1}}
    assert (summary.search_p50_ms, summary.search_p99_ms) == (50.0, 99.0)
    assert summary.failed
