"""Shared fixtures: temporary warehouse and settings, the real third-party files, Prefect harness."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import flows  # noqa: F401  (sets Prefect's no-telemetry defaults before Prefect is imported)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "fixtures"
SAMPLES = REPO / "samples" / "inbox"


_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", None}


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Tests never reach the internet: resolving any non-loopback host fails loudly."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in _LOCAL and not str(host).startswith("127."):
            raise OSError(f"test tried to reach {host!r}: tests must use a local server")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def shared_fixtures() -> Path:
    """../shared/fixtures: real third-party files; tests using it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return SHARED


@pytest.fixture
def settings_env(tmp_path, monkeypatch):
    """Point RAREWATCH_* at a temporary warehouse and an empty inbox; returns a Settings factory."""
    from flows.settings import Settings

    for key in list(os.environ):
        if key.startswith("RAREWATCH_"):
            monkeypatch.delenv(key)
    warehouse = tmp_path / "warehouse"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("RAREWATCH_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("RAREWATCH_INBOX", str(inbox))
    monkeypatch.setenv("RAREWATCH_HTTP_BACKOFF", "0")
    monkeypatch.setenv("RAREWATCH_TASK_RETRIES", "0")

    def make(**overrides):
        for k, v in overrides.items():
            if v is None:
                monkeypatch.delenv(f"RAREWATCH_{k.upper()}", raising=False)
            else:
                monkeypatch.setenv(f"RAREWATCH_{k.upper()}", str(v))
        return Settings()

    make.warehouse = warehouse  # type: ignore[attr-defined]
    make.inbox = inbox  # type: ignore[attr-defined]
    return make


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect backend (SQLite) for the whole session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
