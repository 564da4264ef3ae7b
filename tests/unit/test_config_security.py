"""Where settings come from, which eMAG URLs are accepted, and a transform hook that cannot load: each is one
clear line, never a traceback, and never a setting picked up from whatever directory magflow runs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from magflow.config import SettingsError, load_settings
from magflow.sync.transforms import load_transform

PLAIN_EMAG = "http://marketplace-api.emag.ro/api-3"


def _magflow(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture
def no_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A home and working directory of this test's own, with no settings in the environment."""
    for name in list(os.environ):
        if name.startswith(("EMAG_", "MAGFLOW_", "LOG_", "XDG_CONFIG_HOME")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


@pytest.mark.parametrize("account", ["MAIN", "FBE"])
def test_a_plain_http_emag_url_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    monkeypatch.setenv(f"EMAG_{account}_BASE_URL", PLAIN_EMAG)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert message.startswith(f"EMAG_{account}_BASE_URL must be an https:// URL")
    assert "loopback" in message and "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8099/api-3",
        "http://127.0.0.5:8099/api-3",
        "http://localhost:8099/api-3",
        "http://[::1]:8099/api-3",
        "https://marketplace-api.emag.bg/api-3",
    ],
)
def test_https_and_loopback_http_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("EMAG_MAIN_BASE_URL", url)
    assert load_settings(_env_file=None).base_url("main") == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1.example.com/api-3", "http://localhost.example.com/api-3", "ftp://emag.ro", "https://"]
)
def test_lookalike_hosts_and_other_schemes_are_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("EMAG_MAIN_BASE_URL", url)
    with pytest.raises(SettingsError, match=r"^EMAG_MAIN_BASE_URL must be"):
        load_settings(_env_file=None)


def test_the_cli_refuses_a_plain_http_url_in_one_line(tmp_path: Path) -> None:
    proc = _magflow(["status"], tmp_path, {"EMAG_FBE_BASE_URL": PLAIN_EMAG})
    assert proc.returncode == 2
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("magflow: EMAG_FBE_BASE_URL must be an https:// URL"), lines


def test_the_quick_starts_env_in_the_working_directory_is_read(no_env_file: Path) -> None:
    Path(".env").write_text("EMAG_SYNC_INTERVAL_MINUTES=17\n")
    assert load_settings().emag_sync_interval_minutes == 17


def test_the_user_config_file_wins_and_a_stray_env_in_the_working_directory_is_ignored(no_env_file: Path) -> None:
    user_file = no_env_file / ".config" / "magflow" / ".env"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("EMAG_SYNC_INTERVAL_MINUTES=23\n")
    Path(".env").write_text("EMAG_SYNC_INTERVAL_MINUTES=5\nMAGFLOW_TRANSFORM_HOOK=evil:run\n")
    settings = load_settings()
    assert settings.emag_sync_interval_minutes == 23
    assert settings.magflow_transform_hook is None


def test_xdg_config_home_moves_the_user_config_file(
    no_env_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_home = tmp_path / "xdg"
    (config_home / "magflow").mkdir(parents=True)
    (config_home / "magflow" / ".env").write_text("EMAG_SYNC_INTERVAL_MINUTES=29\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    Path(".env").write_text("EMAG_SYNC_INTERVAL_MINUTES=5\n")
    assert load_settings().emag_sync_interval_minutes == 29


def test_magflow_env_file_names_the_only_file_read(
    no_env_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "magflow.env"
    chosen.write_text("EMAG_SYNC_INTERVAL_MINUTES=31\n")
    Path(".env").write_text("EMAG_SYNC_INTERVAL_MINUTES=5\nEMAG_ENABLE_SCHEDULED_SYNC=false\n")
    monkeypatch.setenv("MAGFLOW_ENV_FILE", str(chosen))
    settings = load_settings()
    assert settings.emag_sync_interval_minutes == 31 and settings.emag_enable_scheduled_sync is True
    monkeypatch.setenv("MAGFLOW_ENV_FILE", "")  # empty: the environment only
    assert load_settings().emag_sync_interval_minutes == 60


def test_a_missing_magflow_env_file_is_one_line(tmp_path: Path) -> None:
    proc = _magflow(["status"], tmp_path, {"MAGFLOW_ENV_FILE": str(tmp_path / "nope.env")})
    assert proc.returncode == 2
    assert _stderr_lines(proc) == [
        f"magflow: MAGFLOW_ENV_FILE names {tmp_path / 'nope.env'}, which does not exist: "
        "create it, or unset MAGFLOW_ENV_FILE to read ~/.config/magflow/.env or ./.env"
    ]


@pytest.mark.parametrize(
    ("source", "hook", "reason"),
    [
        ("def run(offer, context) return {}\n", "broken_syntax:run", "SyntaxError"),
        ("import module_that_is_not_installed\n", "broken_import:run", "No module named"),
        ("raise RuntimeError('no VAT table\\nsecond line')\n", "broken_body:run", "RuntimeError: no VAT table"),
        ("run = 42\n", "not_callable:run", "is not a function"),
        ("", "no_colon", "give it as package.module:function"),
    ],
)
def test_a_hook_that_cannot_load_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, hook: str, reason: str
) -> None:
    module = hook.partition(":")[0]
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SettingsError) as info:
        load_transform(hook)
    message = str(info.value)
    assert message.startswith(f"MAGFLOW_TRANSFORM_HOOK={hook!r}") and reason in message
    assert "\n" not in message


async def test_the_cli_reports_a_broken_hook_in_one_line(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "broken_hook.py").write_text("def run(offer, context) return {}\n")
    env = {"DATABASE_URL": database_url, "MAGFLOW_TRANSFORM_HOOK": "broken_hook:run", "PYTHONPATH": str(tmp_path)}
    proc = _magflow(["sync", "--account", "main", "--sandbox", "--sandbox-products", "5"], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("magflow: MAGFLOW_TRANSFORM_HOOK='broken_hook:run'"), lines
    assert "Traceback" not in proc.stderr + proc.stdout
