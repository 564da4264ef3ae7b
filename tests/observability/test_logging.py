"""logs/emag_sync.log: the greps of the user's guide work, LOG_LEVEL and LOG_FORMAT apply, no secrets."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from magflow.observability.logging import SharedRotatingFileHandler, TextFormatter, configure_logging, reset_logging

from .conftest import SyncRunner, settings_for

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ .+$")
PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    levels = (root.level, logging.getLogger("magflow").level)
    yield
    reset_logging()
    root.setLevel(levels[0])
    logging.getLogger("magflow").setLevel(levels[1])


def grep(path: Path, needle: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if needle in line]


async def test_a_sync_writes_greppable_lines(sync_runner: SyncRunner, tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "deep" / "er")
    path = configure_logging(settings, console=False)
    assert path == settings.log_file and path.parent.is_dir()

    result = await sync_runner(account="main", mode="full")
    sync_id = result["sync_id"]

    lines = path.read_text().splitlines()
    assert lines and all(LINE.match(line) for line in lines if not line.startswith((" ", "Traceback")))
    started = grep(path, "sync started")
    assert len(started) == 1
    assert f" INFO magflow.sync sync started sync_id={sync_id} account=main mode=full" in started[0]
    finished = grep(path, "sync finished")
    assert len(finished) == 1 and "status=completed" in finished[0] and f"sync_id={sync_id}" in finished[0]
    assert len(grep(path, "account=main")) >= 2
    assert grep(path, "ERROR") == []


async def test_a_refused_sync_and_any_error_are_greppable_without_secrets(
    sync_runner: SyncRunner, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, emag_main_username="sandbox-main", emag_main_password=PASSWORD)
    path = configure_logging(settings, console=False)
    basic = base64.b64encode(f"sandbox-main:{PASSWORD}".encode()).decode()
    # Any logger, any shape: a library echoing a header, a URL with a password, an exception message.
    logging.getLogger("httpx").error("request failed Authorization: Basic %s", basic)
    logging.getLogger("some.library").error("could not connect to postgresql://magflow:%s@db:5432/x", PASSWORD)
    logging.getLogger("magflow.api").warning("token rejected: Bearer mgf_abcdefghijklmnop1234")
    try:
        raise RuntimeError(f"login with password={PASSWORD} refused")
    except RuntimeError:
        logging.getLogger("magflow.sync").exception("sync crashed account=main")

    result = await sync_runner(account="main", mode="full", passwords={"main": PASSWORD + "-wrong"})
    assert result["status"] == "failed"

    text = path.read_text()
    assert PASSWORD not in text and basic not in text and "mgf_abcdefghijklmnop1234" not in text
    errors = grep(path, "ERROR")
    assert len(errors) >= 3
    assert any("Authorization: Basic ***" in e for e in errors)
    assert any("postgresql://magflow:***@db:5432/x" in e for e in errors)
    crash = next(e for e in errors if "sync crashed" in e)
    assert "account=main" in crash
    assert "password=***" in text  # the traceback was redacted too
    assert grep(path, "status=failed") and all("account=main" in line for line in grep(path, "status=failed"))


def test_log_level_debug_adds_detail(tmp_path: Path) -> None:
    path = configure_logging(settings_for(tmp_path), console=False)
    logging.getLogger("magflow.sync").debug("page read account=main page=1")
    assert grep(path, "page read") == []

    configure_logging(settings_for(tmp_path, log_level="debug"), console=False)
    logging.getLogger("magflow.sync").debug("page read account=main page=2")
    assert [" DEBUG magflow.sync page read account=main page=2" in line for line in grep(path, "page read")] == [True]


def test_configuring_twice_writes_each_line_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    configure_logging(settings, console=False)
    path = configure_logging(settings, console=False)
    logging.getLogger("magflow.sync").info("sync started sync_id=x account=fbe mode=full")
    assert len(grep(path, "account=fbe")) == 1


def test_json_format_has_the_fields_as_keys(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, log_format="json", emag_fbe_username="u", emag_fbe_password=PASSWORD)
    path = configure_logging(settings, console=False)
    logging.getLogger("magflow.sync").info("sync started sync_id=%s account=%s mode=%s", "abc", "fbe", "full")
    logging.getLogger("magflow.worker").error("task failed", extra={"account": "main", "detail": PASSWORD})
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    started, failed = entries
    assert started["level"] == "INFO" and started["logger"] == "magflow.sync"
    assert (started["sync_id"], started["account"], started["mode"]) == ("abc", "fbe", "full")
    assert started["time"].endswith("Z")
    assert failed["level"] == "ERROR" and failed["account"] == "main" and failed["detail"] == "***"
    assert grep(path, '"level": "ERROR"') and PASSWORD not in path.read_text()


def test_processes_sharing_the_file_rotate_it_without_losing_lines(tmp_path: Path) -> None:
    path = tmp_path / "emag_sync.log"
    writers = [SharedRotatingFileHandler(path, max_bytes=2000, backup_count=50) for _ in range(2)]
    for handler in writers:
        handler.setFormatter(TextFormatter())
    try:
        for n in range(300):
            record = logging.LogRecord("magflow.sync", logging.INFO, __file__, 1, "line n=%d", (n,), None)
            writers[n % 2].handle(record)
    finally:
        for handler in writers:
            handler.close()
    files = sorted(tmp_path.glob("emag_sync.log*"))
    assert len(files) > 5
    assert all(f.stat().st_size <= 2200 for f in files)
    numbers = sorted(int(m) for f in files for m in re.findall(r"line n=(\d+)", f.read_text()))
    assert numbers == list(range(300))
