"""Issue 19, item 6: MAGFLOW_API_ALLOW_LOCAL_READS trusts the raw peer only, never an address a proxy forwards,
and `magflow serve` refuses to start with it while every proxy is trusted to name the client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from .conftest import PREFIX, assert_error
from .serve_process import free_port, serve_env

FORWARDED = (
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
    {"Forwarded": "for=127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"},
)


async def test_a_relayed_request_never_reads_without_a_token(sandbox: Any, start_api: Any) -> None:
    # A reverse proxy on this machine relays a remote caller that wrote its own X-Forwarded-For: the raw peer
    # is loopback, the header names loopback, and still the caller is not local.
    local = start_api(sandbox.base_url, magflow_api_allow_local_reads=True)
    async with httpx.AsyncClient(base_url=local.base_url) as http:
        assert (await http.get(f"{PREFIX}/history")).status_code == 200  # direct from this machine: allowed
        for headers in FORWARDED:
            for path in (f"{PREFIX}/history", f"{PREFIX}/status", "/metrics"):
                assert_error(await http.get(path, headers=headers), 401, "missing_token")
            ready = (await http.get("/health/ready", headers=headers)).json()
            assert "accounts" not in ready["checks"], headers  # the reduced anonymous report


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`magflow serve` that is expected to stop by itself; a server that starts is stopped after 30 s."""
    command = [sys.executable, "-m", "magflow", "serve", "--port", str(free_port()), *args]
    try:
        return subprocess.run(
            command,
            env=serve_env("postgresql://postgres@127.0.0.1:1/unused", tmp_path, **env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("magflow serve started instead of refusing the configuration") from None


def test_serve_refuses_local_reads_while_every_proxy_is_trusted(tmp_path: Path) -> None:
    cases: list[tuple[tuple[str, ...], dict[str, str]]] = [
        ((), {"FORWARDED_ALLOW_IPS": "*"}),
        ((), {"FORWARDED_ALLOW_IPS": "10.0.0.2, 0.0.0.0/0"}),
        (("--forwarded-allow-ips", "*"), {}),
    ]
    for args, env in cases:
        refused = _serve(tmp_path, *args, MAGFLOW_API_ALLOW_LOCAL_READS="true", **env)
        assert refused.returncode == 2, (args, env, refused.stderr)
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, refused.stderr
        assert "MAGFLOW_API_ALLOW_LOCAL_READS" in lines[0] and "FORWARDED_ALLOW_IPS" in lines[0]
