"""logs/emag_sync.log: the greps of the user's guide work, LOG_LEVEL and LOG_FORMAT apply, no secrets."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
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


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plainly created file is world-readable (0644)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_log_file_and_its_rotations_are_not_world_readable(tmp_path: Path, umask_022: None) -> None:
    settings = settings_for(tmp_path)
    path = configure_logging(settings, console=False, max_bytes=2000, backup_count=3)
    for n in range(100):
        logging.getLogger("magflow.emag.wire").info("eMAG response account=main body=%s n=%d", "x" * 100, n)
    rotated = sorted(path.parent.glob("emag_sync.log.*[0-9]"))
    assert len(rotated) == 3
    assert {mode(p) for p in [path, *rotated]} == {0o640}


def test_a_log_file_left_readable_by_an_older_version_is_tightened(tmp_path: Path, umask_022: None) -> None:
    settings = settings_for(tmp_path)
    path = settings.log_file
    path.parent.mkdir(parents=True)
    for old in (path, path.with_name("emag_sync.log.1")):
        old.write_text("2026-11-29T10:00:00.000Z INFO magflow.sync old line\n")
        old.chmod(0o644)
    configure_logging(settings, console=False)
    assert mode(path) == 0o640 and mode(path.with_name("emag_sync.log.1")) == 0o640


@pytest.mark.parametrize(("file_mode", "warned"), [(0o644, True), (0o640, True), (0o600, False), (0o400, False)])
def test_an_env_file_other_users_can_read_is_warned_about_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], file_mode: int, warned: bool
) -> None:
    env_file = tmp_path / "magflow.env"
    env_file.write_text("EMAG_MAIN_PASSWORD=s3cret\n")
    env_file.chmod(file_mode)
    monkeypatch.setenv("MAGFLOW_ENV_FILE", str(env_file))
    path = configure_logging(settings_for(tmp_path), console=False)
    warnings = grep(path, "WARNING magflow.config")
    stderr = capsys.readouterr().err
    if warned:
        assert len(warnings) == 1 and f"chmod 600 {env_file}" in warnings[0] and f"{file_mode:04o}" in warnings[0]
        assert stderr.startswith("magflow: warning: ") and f"chmod 600 {env_file}" in stderr
    else:
        assert warnings == [] and stderr == ""
