"""Settings come from the guide's variable names; a bad value stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from magflow.config import SettingsError, load_settings


def test_guide_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAG_MAIN_USERNAME", "seller@example.ro")
    monkeypatch.setenv("EMAG_MAIN_PASSWORD", "s3cret-main")
    monkeypatch.setenv("EMAG_FBE_BASE_URL", "https://marketplace-api.emag.bg/api-3/")
    monkeypatch.setenv("EMAG_SYNC_INTERVAL_MINUTES", "30")
    monkeypatch.setenv("EMAG_ENABLE_SCHEDULED_SYNC", "false")
    settings = load_settings(_env_file=None)
    assert settings.username("main") == "seller@example.ro"
    assert settings.has_credentials("main") and not settings.has_credentials("fbe")
    assert settings.base_url("fbe") == "https://marketplace-api.emag.bg/api-3"
    assert settings.emag_sync_interval_minutes == 30
    assert settings.emag_enable_scheduled_sync is False
    assert "s3cret-main" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EMAG_SYNC_INTERVAL_MINUTES", "abc", "EMAG_SYNC_INTERVAL_MINUTES must be a whole number"),
        ("EMAG_SYNC_INTERVAL_MINUTES", "0", "EMAG_SYNC_INTERVAL_MINUTES must be a number of at least 1"),
        ("EMAG_ENABLE_SCHEDULED_SYNC", "maybe", "EMAG_ENABLE_SCHEDULED_SYNC must be true or false"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
        ("DATABASE_URL", "mysql://u:pw@h/db", "DATABASE_URL must be a PostgreSQL URL"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert str(info.value).startswith(expected)
    assert "pw@" not in str(info.value)


def test_cli_stops_with_one_line_on_a_bad_value() -> None:
    env = {"EMAG_SYNC_INTERVAL_MINUTES": "abc", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "magflow", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "magflow: EMAG_SYNC_INTERVAL_MINUTES must be a whole number (got 'abc'); fix it in the environment or .env"
    ]


def test_env_example_and_readme_document_every_setting() -> None:
    from pathlib import Path

    from magflow.config import Settings

    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    for name in Settings.model_fields:
        variable = name.upper()
        assert variable in example, f"{variable} is missing from .env.example"
        assert variable in readme, f"{variable} is missing from the README's configuration table"


def test_an_unreachable_database_is_one_line_that_says_what_to_check() -> None:
    env = {"DATABASE_URL": "postgresql://magflow:s3cret@127.0.0.1:1/magflow", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "magflow", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("magflow: cannot use the database postgresql://magflow:***@127.0.0.1:1/magflow")
    assert "check DATABASE_URL" in proc.stderr and "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
