"""The HTTP service, exercised through TestClient with the fake embedder and the tiny index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY, FakeEmbedder, build_index, start
from fastapi.testclient import TestClient
from httpx import Response

from procqa.api import MAX_BODY_BYTES, create_app
from procqa.index import current_version
from procqa.settings import Settings

TOKEN = "s3cret-admin-token"
RECOVERY = "How long is recovery after a knee replacement?"


@pytest.fixture
def admin(tiny_index: Path, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    settings = Settings(index=tiny_index, corpus=TINY, admin_token=TOKEN, _env_file=None)
    yield from start(settings, fake_embedder)


@pytest.fixture
def empty_index(tmp_path: Path) -> Path:
    return tmp_path / "no-index-here"


@pytest.fixture
def unindexed(empty_index: Path, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    settings = Settings(index=empty_index, corpus=TINY, admin_token=TOKEN, _env_file=None)
    yield from start(settings, fake_embedder)


def error_of(response: Response, status: int) -> dict[str, str | None]:
    """The error object of a response, after checking its status and the common shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["message"]
    return body["error"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Search: the answer and its attribution


def test_get_search_answers_with_attributed_passages(client: TestClient) -> None:
    response = client.get("/search", params={"q": RECOVERY, "k": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["query"] == RECOVERY
    assert body["took_ms"] >= 0
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    top = body["results"][0]
    assert top["procedure"] == {
        "id": "cpt-27447-total-knee-arthroplasty",
        "title": "Total knee arthroplasty",
        "code": "27447",
        "code_system": "CPT",
    }
    assert top["source"] == "tiny/cpt-27447-total-knee-arthroplasty.txt"
    first, last = top["lines"]
    assert 1 <= first <= last
    assert top["text"][top["answer_start"] : top["answer_end"]] == top["answer"]


def test_post_search_gives_the_same_answer_as_get(client: TestClient) -> None:
    got = client.get("/search", params={"q": RECOVERY, "k": 5}).json()
    posted = client.post("/search", json={"query": RECOVERY, "k": 5, "code": None, "section": None})

    assert posted.status_code == 200
    assert posted.json()["query"] == RECOVERY
    assert posted.json()["results"] == got["results"]


@pytest.mark.parametrize("k", [1, 2, 7])
def test_search_returns_k_passages(client: TestClient, k: int) -> None:
    results = client.get("/search", params={"q": "recovery", "k": k}).json()["results"]

    assert len(results) == k


def test_search_returns_every_passage_when_k_exceeds_them(client: TestClient) -> None:
    passages = client.get("/ready").json()["passages"]

    results = client.get("/search", params={"q": "recovery", "k": 100}).json()["results"]

    assert len(results) == passages < 100


def test_code_filter_keeps_only_that_procedure(client: TestClient) -> None:
    results = client.get("/search", params={"q": "recovery time", "k": 20, "code": "45378"}).json()["results"]

    assert results
    assert {r["procedure"]["id"] for r in results} == {"cpt-45378-diagnostic-colonoscopy"}


def test_section_filter_keeps_only_that_section(client: TestClient) -> None:
    body = {"query": "what happens afterwards", "k": 10, "section": "Recovery"}
    results = client.post("/search", json=body).json()["results"]

    assert len(results) >= 3
    assert {r["section"] for r in results} == {"Recovery"}


def test_a_result_shows_the_heading_as_written_and_its_kind(client: TestClient) -> None:
    results = client.get("/search", params={"q": "what can go wrong", "section": "risks"}).json()["results"]

    assert [(r["procedure"]["id"], r["section"], r["section_kind"]) for r in results] == [
        ("asthma", "Risks", "Risks and Complications")
    ]


def test_custom_sections_of_a_markdown_document_are_searchable(client: TestClient) -> None:
    results = client.get("/search", params={"q": "wheezing", "section": "Symptoms"}).json()["results"]

    assert [r["procedure"]["id"] for r in results] == ["asthma"]


# Search: bad input is a 422 in the common shape, naming what is valid


@pytest.mark.parametrize("q", ["", " ", "  \t\n  ", "\u3000"])
def test_blank_query_is_refused(client: TestClient, q: str) -> None:
    error = error_of(client.get("/search", params={"q": q}), 422)

    assert error == {
        "code": "invalid_query",
        "message": "query must contain at least one non-space character",
        "field": "q",
    }


def test_blank_query_in_a_body_names_the_body_field(client: TestClient) -> None:
    error = error_of(client.post("/search", json={"query": "   "}), 422)

    assert error["field"] == "query"
    assert error["message"] == "query must contain at least one non-space character"


def test_missing_query_is_refused(client: TestClient) -> None:
    assert error_of(client.get("/search"), 422)["field"] == "q"
    assert error_of(client.post("/search", json={"k": 3}), 422)["field"] == "query"


def test_query_over_the_limit_is_refused_with_its_length(client: TestClient) -> None:
    error = error_of(client.get("/search", params={"q": "knee " * 201}), 422)

    assert error["field"] == "q"
    assert error["message"] == "query is 1005 characters; the limit is 1000"


def test_query_at_the_limit_is_answered(client: TestClient) -> None:
    assert client.get("/search", params={"q": "k" * 1000}).status_code == 200


def test_query_limit_follows_the_settings(tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    settings = Settings(index=tiny_index, max_query_chars=10, max_k=5, _env_file=None)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        long = error_of(client.get("/search", params={"q": "knee recovery"}), 422)
        many = error_of(client.get("/search", params={"q": "knee", "k": 6}), 422)

    assert long["message"] == "query is 13 characters; the limit is 10"
    assert many["message"] == "k must be an integer from 1 to 5"


@pytest.mark.parametrize("k", ["0", "-1", "101", "99999999999999999999", "ten", "2.5"])
def test_k_outside_the_range_is_refused_naming_the_range(client: TestClient, k: str) -> None:
    error = error_of(client.get("/search", params={"q": "knee", "k": k}), 422)

    assert error == {"code": "invalid_query", "message": "k must be an integer from 1 to 100", "field": "k"}


def test_k_outside_the_range_in_a_body_is_refused(client: TestClient) -> None:
    error = error_of(client.post("/search", json={"query": "knee", "k": 0}), 422)

    assert error["field"] == "k"
    assert "from 1 to 100" in error["message"]


def test_unknown_section_is_refused_listing_the_valid_ones(client: TestClient) -> None:
    error = error_of(client.get("/search", params={"q": "knee", "section": "Aftercare"}), 422)

    assert error["code"] == "invalid_query"
    assert "'Aftercare'" in error["message"]
    for valid in ("Recovery", "Summary", "Symptoms", "Treatment"):
        assert valid in error["message"]


def test_unknown_code_is_refused(client: TestClient) -> None:
    error = error_of(client.post("/search", json={"query": "knee", "code": "99999"}), 422)

    assert error["code"] == "invalid_query"
    assert "'99999'" in error["message"]
    assert "/procedures" in error["message"]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\r", "\x7f", "\x85"])
def test_control_characters_are_refused(client: TestClient, char: str) -> None:
    error = error_of(client.get("/search", params={"q": f"knee{char}recovery"}), 422)

    assert error["field"] == "q"
    assert f"U+{ord(char):04X}" in error["message"]


def test_tab_and_newline_are_allowed(client: TestClient) -> None:
    assert client.get("/search", params={"q": "knee\trecovery\ntime"}).status_code == 200


def test_unpaired_surrogate_in_a_body_is_refused(client: TestClient) -> None:
    response = client.post(
        "/search", content=b'{"query": "knee \\ud800"}', headers={"content-type": "application/json"}
    )

    assert "U+D800" in error_of(response, 422)["message"]


def test_malformed_json_is_refused(client: TestClient) -> None:
    response = client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"})

    error = error_of(response, 422)
    assert error["field"] == "body"
    assert "JSON" in error["message"]


def test_body_over_the_limit_is_refused_by_its_declared_length(client: TestClient) -> None:
    query = "knee " * (MAX_BODY_BYTES // 5)
    error = error_of(client.post("/search", json={"query": query}), 413)

    assert error["code"] == "body_too_large"
    assert str(MAX_BODY_BYTES) in error["message"]


def test_body_over_the_limit_is_refused_when_streamed_without_a_length(client: TestClient) -> None:
    chunks = iter([b'{"query": "', b"k" * MAX_BODY_BYTES, b'"}'])
    response = client.post("/search", content=chunks, headers={"content-type": "application/json"})

    assert "content-length" not in response.request.headers
    assert error_of(response, 413)["code"] == "body_too_large"


HOSTILE = [
    "<script>alert('knee')</script>",
    "<img src=x onerror=alert(1)> recovery",
    "'; DROP TABLE procedures; --",
    "1' OR '1'='1",
    "🦵🏽 knee 😷 recovery? 🩺",
    "x" * 900,
    "%s%s%n {0} ${jndi:ldap://x} ../../etc/passwd",
    "\u202eeerk \u200b\ufeff",
    "!!! ??? ...",
]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_queries_are_answered_not_crashed_on(client: TestClient, q: str) -> None:
    got = client.get("/search", params={"q": q})
    posted = client.post("/search", json={"query": q, "code": q[:20], "section": q[:20]})

    assert got.status_code == 200
    assert got.json()["query"] == q
    assert posted.status_code == 422  # the filters name no code or section


def test_invalid_percent_encoded_utf8_is_answered(client: TestClient) -> None:
    response = client.get("/search?q=%ff%fe")

    assert response.status_code == 200
    assert response.json()["query"] == "\ufffd\ufffd"


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage", b"[]", b"null", b'"knee"', b'{"query": 5}', b'{"query": "knee", "k": "lots"}'],
)
def test_odd_bodies_are_refused_without_a_server_error(client: TestClient, content: bytes) -> None:
    response = client.post("/search", content=content, headers={"content-type": "application/json"})

    assert response.status_code in (400, 422)
    assert set(response.json()["error"]) == {"code", "message", "field"}


# Procedures


def test_procedures_lists_ids_codes_and_titles(client: TestClient) -> None:
    body = client.get("/procedures").json()

    assert body["count"] == len(body["data"]) == 5
    by_id = {p["id"]: p for p in body["data"]}
    assert set(by_id) == {
        "asthma",
        "cpt-22849-reinsertion-of-spinal-fixation-device",
        "cpt-27447-total-knee-arthroplasty",
        "cpt-45378-diagnostic-colonoscopy",
        "more-1",
    }
    assert by_id["cpt-22849-reinsertion-of-spinal-fixation-device"] == {
        "id": "cpt-22849-reinsertion-of-spinal-fixation-device",
        "title": "Reinsertion of spinal fixation device",
        "code": "22849",
        "code_system": "CPT",
    }
    assert by_id["asthma"]["code"] is None


def test_procedure_detail_has_its_sections_in_document_order(client: TestClient) -> None:
    body = client.get("/procedures/asthma").json()

    assert body["title"] == "Asthma"
    assert [(s["name"], s["kind"]) for s in body["sections"]] == [
        ("Symptoms", "Symptoms"),
        ("Treatment", "Treatment"),
        ("Risks", "Risks and Complications"),
    ]
    symptoms = body["sections"][0]
    assert "Wheezing" in symptoms["text"]
    assert symptoms["source"] == "tiny/asthma.md"
    starts = [s["lines"][0] for s in body["sections"]]
    assert starts == sorted(starts)


def test_unknown_procedure_is_not_found(client: TestClient) -> None:
    error = error_of(client.get("/procedures/cpt-00000"), 404)

    assert error["code"] == "not_found"
    assert "'cpt-00000'" in error["message"]


@pytest.mark.parametrize("procedure_id", ["CPT-22849", "-asthma", ".env", "a%20b", "x" * 101, "%2e%2e"])
def test_malformed_procedure_ids_are_refused_before_lookup(client: TestClient, procedure_id: str) -> None:
    error = error_of(client.get(f"/procedures/{procedure_id}"), 422)

    assert error["field"] == "procedure_id"


def test_unknown_routes_and_methods_share_the_error_shape(client: TestClient) -> None:
    assert error_of(client.get("/nowhere"), 404)["code"] == "not_found"
    assert error_of(client.delete("/search"), 405)["code"] == "method_not_allowed"


# Health and readiness


def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_the_served_version(client: TestClient, tiny_index: Path) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["version"] == current_version(tiny_index).name
    assert (body["procedures"], body["passages"]) == (5, body["manifest"]["passages"])
    assert body["manifest"]["model"] == FakeEmbedder.model_id
    assert "Symptoms" in body["sections"]


# Without an index


def test_without_an_index_the_app_is_alive_but_not_ready(unindexed: TestClient) -> None:
    assert unindexed.get("/health").json() == {"status": "ok"}
    error = error_of(unindexed.get("/ready"), 503)

    assert error["code"] == "index_unavailable"
    assert "procqa index" in error["message"]


@pytest.mark.parametrize("path", ["/search?q=knee", "/procedures", "/procedures/asthma"])
def test_without_an_index_reads_answer_503_saying_how_to_build_one(
    unindexed: TestClient, empty_index: Path, path: str
) -> None:
    error = error_of(unindexed.get(path), 503)

    assert "procqa index" in error["message"]
    assert str(empty_index) in error["message"]  # the underlying error says where it looked


def test_reload_serves_an_index_built_after_startup(
    unindexed: TestClient, empty_index: Path, fake_embedder: FakeEmbedder
) -> None:
    assert error_of(unindexed.post("/admin/reload", headers=bearer(TOKEN)), 503)["code"] == "index_unavailable"

    build_index(TINY, empty_index, fake_embedder)
    reloaded = unindexed.post("/admin/reload", headers=bearer(TOKEN))

    assert reloaded.status_code == 200
    assert reloaded.json() == {"version": current_version(empty_index).name, "previous": None, "changed": True}
    assert unindexed.get("/search", params={"q": "knee"}).status_code == 200


# Admin reload


def test_reload_is_disabled_without_an_admin_token(client: TestClient) -> None:
    error = error_of(client.post("/admin/reload", headers=bearer("anything")), 404)

    assert "PROCQA_ADMIN_TOKEN" in error["message"]


def test_reload_is_disabled_with_an_empty_admin_token(tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    settings = Settings(index=tiny_index, admin_token="", _env_file=None)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        assert client.post("/admin/reload", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(TOKEN + "x"),
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": b"Bearer t\xf6ken"},
    ],
)
def test_reload_needs_the_admin_token(admin: TestClient, headers: dict[str, str]) -> None:
    response = admin.post("/admin/reload", headers=headers)

    assert error_of(response, 401)["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_reload_with_the_token_reports_the_served_version(admin: TestClient, tiny_index: Path) -> None:
    response = admin.post("/admin/reload", headers=bearer(TOKEN))

    assert response.status_code == 200
    version = current_version(tiny_index).name
    assert response.json() == {"version": version, "previous": version, "changed": False}


def test_reload_switches_to_a_new_version(admin: TestClient, tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    before = admin.get("/ready").json()["version"]
    build_index(TINY, tiny_index, fake_embedder)
    after = current_version(tiny_index).name
    assert after != before

    response = admin.post("/admin/reload", headers=bearer(TOKEN))

    assert response.json() == {"version": after, "previous": before, "changed": True}
    assert admin.get("/ready").json()["version"] == after


def test_failed_reload_keeps_the_old_version_serving(admin: TestClient, tiny_index: Path) -> None:
    before = admin.get("/ready").json()["version"]
    (tiny_index / "CURRENT").write_text("19700101T000000000000Z\n", encoding="utf-8")

    error = error_of(admin.post("/admin/reload", headers=bearer(TOKEN)), 409)

    assert before in error["message"]
    assert admin.get("/ready").json()["version"] == before
    assert admin.get("/search", params={"q": "knee"}).status_code == 200


# Cross-origin requests and the OpenAPI document


def test_cors_is_off_unless_origins_are_configured(client: TestClient) -> None:
    response = client.get("/health", headers={"Origin": "https://example.org"})

    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_the_configured_origins(tiny_index: Path, fake_embedder: FakeEmbedder) -> None:
    settings = Settings(index=tiny_index, cors_origins=["https://example.org"], _env_file=None)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        allowed = client.get("/health", headers={"Origin": "https://example.org"})
        other = client.get("/health", headers={"Origin": "https://elsewhere.net"})

    assert allowed.headers["access-control-allow-origin"] == "https://example.org"
    assert "access-control-allow-origin" not in other.headers


def test_every_route_has_a_summary_and_search_documents_its_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    operations = [op for methods in paths.values() for op in methods.values()]
    assert len(operations) == 7
    assert paths["/search"]["get"]["summary"] == "Answer a question with the best matching passages."
    assert all(op["summary"] and "\n" not in op["summary"] for op in operations)
    post = paths["/search"]["post"]
    assert set(post["requestBody"]["content"]["application/json"]["examples"]) == {"question", "filtered"}
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorPublic")
