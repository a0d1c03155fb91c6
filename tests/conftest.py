"""Shared fixtures: a clean environment, both storage backends, a Chalice test client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import runtime, settings
from chalicelib.storage import FolderStorage, S3Storage, Storage

PROJECT_DIR = Path(__file__).resolve().parent.parent
PAYLOADS = PROJECT_DIR / "tests" / "payloads"
SECRETS = {
    "TELEGRAM_SECRET_TOKEN": "tg-Secret_0123456789",
    "WHATSAPP_VERIFY_TOKEN": "verify-7c1e5d",
    "WHATSAPP_APP_SECRET": "app-secret-9f8e7d6c",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting leaks in from the developer's shell or `.env`; AWS calls can only reach moto."""
    for name in (*settings.NAMES, *(f"{n}_PARAM" for n in settings.SECRETS)):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)
    settings.reset()
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="chatlake-test")
        yield client


@pytest.fixture(params=["folder", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """The lake on each backend, also installed as the app's lake (DATALAKE_URL)."""
    if request.param == "folder":
        storage: Storage = FolderStorage(tmp_path / "lake")
        monkeypatch.setenv("DATALAKE_URL", str(tmp_path / "lake"))
        runtime.use_storage(str(tmp_path / "lake"), storage)
        yield storage
        return
    client = request.getfixturevalue("s3")
    storage = S3Storage("chatlake-test", "lake", client=client)
    monkeypatch.setenv("DATALAKE_URL", "s3://chatlake-test/lake")
    runtime.use_storage("s3://chatlake-test/lake", storage)
    yield storage


def keys(storage: Storage, prefix: str = "") -> list[str]:
    return [o.key for o in storage.list(prefix)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- figures: what the hostile tests measured, printed once at the end of the run ------------------------------

FIGURES: dict[str, str] = {}


def record_figure(name: str, text: str) -> None:
    """Keep a measured figure (cases run, deliveries/s) for the summary at the end of `make test`."""
    FIGURES[name] = text


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("chatlake figures")
        for name, text in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {text}")
