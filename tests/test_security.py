"""Exposure: out of the box the service listens on loopback only, answers no cross-origin
requests and has no admin routes."""

from __future__ import annotations

import os

import pytest
from conftest import FakeEmbedder
from fastapi.testclient import TestClient

from procqa.api import create_app
from procqa.settings import Settings


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a fresh install has them: no PROCQA_ variables, no .env file."""
    for name in [n for n in os.environ if n.startswith("PROCQA_")]:
        monkeypatch.delenv(name)
    return Settings(_env_file=None)


def test_the_service_binds_to_loopback_by_default(defaults: Settings) -> None:
    assert defaults.host == "127.0.0.1"


def test_cors_and_admin_routes_are_off_by_default(defaults: Settings) -> None:
    assert defaults.cors_origins == []
    assert defaults.admin_token is None


def test_the_admin_token_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCQA_ADMIN_TOKEN", "hunter2")

    settings = Settings(_env_file=None)

    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_a_default_app_answers_no_preflight_and_no_admin_route(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        preflight = client.options("/search", headers=headers)
        reload = client.post("/admin/reload", headers={"Origin": "https://evil.example"})

    assert not any(name.startswith("access-control-") for name in preflight.headers)
    assert reload.status_code == 404
