"""Shared plumbing for the benchmarks: the machine, a benchmark database, a sandbox in its own process,
a sync in its own process, and the table printer.

The sandbox and the sync always run in separate processes, so neither shares a GIL with the other or with
the script that measures them.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
ADMIN_URL = os.environ.get("BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CONTROL = {"X-Sandbox-Token": "sandbox-control"}
ACCOUNTS = {"main": ("sandbox-main", "sandbox-main-pass"), "fbe": ("sandbox-fbe", "sandbox-fbe-pass")}


def db_url(name: str = "magflow_bench") -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    mem_kib = int(next(ln for ln in meminfo if ln.startswith("MemTotal")).split()[1])

    async def pg_version() -> str:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "postgresql": asyncio.run(pg_version()),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def recreate_database(name: str = "magflow_bench") -> str:
    """Drop and create the benchmark database, then build magflow's schema in it (Alembic)."""
    from magflow.db.migrate import upgrade

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = db_url(name)
    await upgrade(url)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f}s")


class Sandbox:
    """The eMAG sandbox in a child process (see bench/_sandbox_proc.py)."""

    def __init__(self, products: int, rate_limit: bool, proc: subprocess.Popen[Any], port: int) -> None:
        self.products, self.rate_limit, self.proc, self.port = products, rate_limit, proc, port
        self.root_url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root_url}/api-3"

    def control(self, route: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.root_url}/_sandbox/{route}", json=body or {}, headers=CONTROL, timeout=60)
        response.raise_for_status()
        return response.json()

    def warm_up(self) -> float:
        """Read every page once with the limits off: the sandbox generates and serialises its catalogue lazily,
        and that one-off cost belongs to the emulator, not to the client under test."""
        started = time.perf_counter()
        if self.rate_limit:
            self.control("rate_limit", {"per_second": None, "per_minute": None})
        pages = -(-self.products // 100)

        async def scan(account: str) -> None:
            auth = ACCOUNTS[account]
            async with httpx.AsyncClient(base_url=self.base_url, auth=auth, timeout=120) as client:
                sem = asyncio.Semaphore(4)

                async def one(page: int) -> None:
                    async with sem:
                        body = {"currentPage": page, "itemsPerPage": 100}
                        (await client.post("/product_offer/read", json=body)).raise_for_status()

                await asyncio.gather(*(one(p) for p in range(1, pages + 1)))

        async def both() -> None:
            await asyncio.gather(*(scan(a) for a in ACCOUNTS))

        asyncio.run(both())
        if self.rate_limit:
            self.control("rate_limit", {"per_second": 3, "per_minute": 180})
            time.sleep(1.1)  # let the sliding windows forget the warm-up
        self.control("counters/reset")
        return time.perf_counter() - started

    def counters(self, account: str) -> dict[str, Any]:
        return dict(self.control(f"{account}/counters"))


@contextmanager
def sandbox(products: int, rate_limit: bool, warm: bool = True) -> Iterator[Sandbox]:
    port = free_port()
    args = [PY, str(BENCH / "_sandbox_proc.py"), "--port", str(port), "--products", str(products)]
    if not rate_limit:
        args.append("--no-rate-limit")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_for_port(port, proc)
        box = Sandbox(products, rate_limit, proc, port)
        if warm:
            box.warm_up()
        yield box
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_sync(
    url: str,
    base_url: str,
    *,
    mode: str = "full",
    rate_limited: bool,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """One `EmagProductSyncService` run in a fresh Python process (bench/_sync_once.py); returns its report."""
    args = [PY, str(BENCH / "_sync_once.py"), "--db-url", url, "--base-url", base_url, "--mode", mode]
    args += ["--rate-limited"] if rate_limited else []
    args += list(extra)
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"the sync process failed with exit code {done.returncode}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if report["result"]["status"] != "completed":
        raise RuntimeError(f"the sync did not complete: {report['result']}")
    return report


async def table_writes(url: str, table: str = "emag_products_v2") -> dict[str, int]:
    """PostgreSQL's own counters of rows inserted/updated/deleted in `table` (pg_stat_user_tables)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup FROM pg_stat_user_tables "
            "WHERE relname = $1",
            table,
        )
        return dict(row) if row else {}
    finally:
        await conn.close()


async def scalar(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def print_table(title: str, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [f"### {title}", "", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str), encoding="utf-8")
    return path


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"
