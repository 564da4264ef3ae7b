"""With DATABASE_URL unset, magflow starts its embedded PostgreSQL, migrates it and syncs into it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded


def _magflow(args: list[str], data_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "DATABASE_URL", "REDIS_URL"))}
    env["MAGFLOW_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_quick_start_sync_into_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "magflow-data"
    try:
        sync = _magflow(
            [
                "sync",
                "--account",
                "both",
                "--mode",
                "full",
                "--sandbox-products",
                "120",
                "--sandbox-rate",
                "0",
            ],
            data_dir,
            tmp_path,
        )
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert "built-in eMAG sandbox" in sync.stdout
        assert "completed" in sync.stdout
        url = _magflow(["db", "url"], data_dir, tmp_path)
        assert url.returncode == 0 and str(data_dir) in url.stdout
        count = _magflow(
            ["db", "psql", "-tAc", "SELECT account_type, count(*) FROM emag_products_v2 GROUP BY 1 ORDER BY 1"],
            data_dir,
            tmp_path,
        )
        assert count.stdout.split() == ["fbe|120", "main|120"], count.stderr
    finally:
        _magflow(["db", "stop"], data_dir, tmp_path)
