"""/metrics in the Prometheus text format, and request logs as JSON lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
from conftest import FakeEmbedder
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from procqa import __version__
from procqa.api import create_app
from procqa.api.metrics import JsonFormatter, json_logs
from procqa.settings import Settings

Labels = dict[str, str]


def samples(client: TestClient, name: str) -> list[tuple[Labels, float]]:
    """Every sample called `name` in a fresh scrape, with its labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.text)
    return [(s.labels, s.value) for f in families for s in f.samples if s.name == name]


def requests_to(client: TestClient, route: str, status: str = "200", method: str = "GET") -> float:
    wanted = {"method": method, "route": route, "status": status}
    return sum(value for labels, value in samples(client, "procqa_http_requests_total") if labels == wanted)


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/search", params={"q": "knee"})
    response = client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "procqa_http_requests",
        "procqa_http_request_duration_seconds",
        "procqa_build_info",
        "procqa_index_info",
        "procqa_index_ready",
        "procqa_index_procedures",
        "procqa_index_passages",
    } <= names


def test_a_search_increments_the_counter_for_route_search(client: TestClient) -> None:
    before = requests_to(client, "/search")

    client.get("/search", params={"q": "knee recovery"})
    client.post("/search", json={"query": "knee recovery"})

    assert requests_to(client, "/search") == before + 1
    assert requests_to(client, "/search", method="POST") == 1


def test_a_search_is_timed_in_the_latency_histogram(client: TestClient) -> None:
    client.get("/search", params={"q": "knee recovery"})

    search = {"method": "GET", "route": "/search", "status": "200"}
    counts = [v for labels, v in samples(client, "procqa_http_request_duration_seconds_count") if labels == search]
    sums = [v for labels, v in samples(client, "procqa_http_request_duration_seconds_sum") if labels == search]
    assert counts == [1]
    assert sums[0] > 0


def test_routes_are_labelled_by_template_not_by_path(client: TestClient) -> None:
    for procedure_id in ("asthma", "cpt-27447-total-knee-arthroplasty", "cpt-00000"):
        client.get(f"/procedures/{procedure_id}")
    client.get("/static/app.css")
    for path in ("/nowhere", "/procedures/asthma/extra", "/admin/../etc"):
        client.get(path)

    routes = {labels["route"] for labels, _ in samples(client, "procqa_http_requests_total")}
    assert requests_to(client, "/procedures/{procedure_id}") == 2
    assert requests_to(client, "/procedures/{procedure_id}", status="404") == 1
    assert requests_to(client, "/static") == 1
    assert requests_to(client, "unmatched", status="404") == 3
    assert not any("asthma" in route or "nowhere" in route for route in routes)


def test_refusals_before_routing_still_count_for_their_route(client: TestClient) -> None:
    client.post("/search", json={"query": "knee " * 20_000})
    client.delete("/search")

    assert requests_to(client, "/search", status="413", method="POST") == 1
    assert requests_to(client, "/search", status="405", method="DELETE") == 1


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    client.request("BREW", "/search")
    client.request("WHEN", "/search")

    assert requests_to(client, "/search", status="405", method="other") == 2


def test_build_and_index_are_described(client: TestClient) -> None:
    ready = client.get("/ready").json()

    assert samples(client, "procqa_build_info") == [({"version": __version__}, 1.0)]
    assert samples(client, "procqa_index_info") == [
        ({"model": FakeEmbedder.model_id, "version": ready["version"]}, 1.0)
    ]
    assert samples(client, "procqa_index_ready") == [({}, 1.0)]
    assert samples(client, "procqa_index_procedures") == [({}, 5.0)]
    assert samples(client, "procqa_index_passages") == [({}, float(ready["passages"]))]


def test_without_an_index_metrics_say_not_ready(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    settings = Settings(index=tmp_path / "none", _env_file=None)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        assert samples(client, "procqa_index_ready") == [({}, 0.0)]
        assert samples(client, "procqa_index_info") == []
        assert samples(client, "procqa_index_passages") == []


def test_each_app_counts_only_its_own_requests(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    with (
        TestClient(create_app(settings, embedder=fake_embedder)) as first,
        TestClient(create_app(settings, embedder=fake_embedder)) as second,
    ):
        first.get("/search", params={"q": "knee"})
        first.get("/search", params={"q": "knee"})

        assert requests_to(first, "/search") == 2
        assert requests_to(second, "/search") == 0


# Logs as JSON lines


def record(message: str, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "procqa.test", "levelno": 20, "levelname": "INFO", "msg": message, **extra})


def test_json_formatter_writes_one_object_a_line_with_the_extra_fields() -> None:
    line = JsonFormatter().format(record("two\nlines", route="/search", status=200, ms=1.5))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines"
    assert (entry["level"], entry["logger"]) == ("INFO", "procqa.test")
    assert (entry["route"], entry["status"], entry["ms"]) == ("/search", 200, 1.5)
    assert entry["time"].endswith("+00:00")


def test_json_formatter_includes_the_exception() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))

    assert "ValueError: broken" in json.loads(line)["exception"]


def test_json_logs_restore_the_logger_afterwards() -> None:
    logger = logging.getLogger("procqa")
    before = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()

    with json_logs(stream=stream):
        logging.getLogger("procqa.test").info("inside", extra={"n": 1})
    logging.getLogger("procqa.test").info("outside")

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["inside"]
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_log_json_setting_logs_one_line_per_request(
    tiny_index: Path, fake_embedder: FakeEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(index=tiny_index, log_json=True, _env_file=None)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        client.get("/search", params={"q": "knee"})
        client.get("/procedures/asthma")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    requests = [entry for entry in lines if entry["logger"] == "procqa.access"]
    assert [(e["method"], e["route"], e["status"]) for e in requests] == [
        ("GET", "/search", 200),
        ("GET", "/procedures/{procedure_id}", 200),
    ]
    assert all(e["ms"] >= 0 for e in requests)


def test_requests_are_not_logged_without_log_json(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="procqa.access"):
        client.get("/health")

    assert [r for r in caplog.records if r.name == "procqa.access"] == []
