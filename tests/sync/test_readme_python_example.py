"""The README's Python example (the user's guide's, with magflow's module names) runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_example_syncs(sandbox: Any, clean_engine: Any, database_url: str, tmp_path: Path) -> None:
    block = re.search(r"```python\n(from magflow\.db import get_db.*?)```", README.read_text(), re.DOTALL)
    assert block is not None, "the README lost its Python example"
    script = block.group(1) + "\nimport asyncio\nasyncio.run(sync_products())\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "REDIS_URL"))}
    env["DATABASE_URL"] = database_url
    for account, (user, password) in sandbox.accounts.items():
        prefix = f"EMAG_{account.upper()}_"
        env.update({prefix + "USERNAME": user, prefix + "PASSWORD": password, prefix + "BASE_URL": sandbox.base_url})
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    active = sum(1 for a in ("main", "fbe") for p in sandbox.state.truth(a) if p["status"] == 1)
    expected = min(active, 2 * 10 * 100)  # incremental, active offers only, at most 10 pages per account
    assert f"Synced {expected} products" in done.stdout
    assert f"Created: {expected}, Updated: 0" in done.stdout
