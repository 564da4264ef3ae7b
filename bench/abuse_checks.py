"""Abuse checks against a real `magflow serve` on 127.0.0.1: what hostile clients cost the server.

Run: .venv/bin/python bench/abuse_checks.py [--bomb-mib 30] [--parallel 4] [--drip-seconds 5]

Scenarios (each bounded in time; every connection goes to 127.0.0.1 only):
- body bomb: `--parallel` clients at once send PATCH /products/{id} with a `--bomb-mib` MiB body of
  `{"stock":[{},{},...` and no token (then with a read token, then with an admin token and no Content-Length,
  chunked); the server must answer before the body is read and stay flat in memory;
- slow client: a request head with one header line every `--drip-seconds` s; the server must hang up;
- silent client: a connection that sends nothing;
- slow body: an admin PATCH whose 100-byte body comes one byte every 2 s.

Prints, per scenario, what the server answered, when, how much each client managed to send, and the server
process's RSS before and at its peak (sampled every 20 ms with psutil). The issue's audit measured, before the
request guard, 127 MB -> 874 MB for one 30 MB bomb and 1.75 GB for four in parallel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

import _common as c

HOST = "127.0.0.1"  # the only address this script ever connects to
DEADLINE_SECONDS = 240.0  # the whole run; every wait below is shorter
PIECE = 64 * 1024
PRODUCT_PATH = "/api/v1/emag/products/products/00000000-0000-0000-0000-000000000000"


class RssSampler:
    """The peak RSS of one process, sampled in a background thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.now())
            except psutil.Error:
                return
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Outcome:
    status: str
    sent_bytes: int
    answered_after_s: float


def _head(method: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {PRODUCT_PATH} HTTP/1.1", f"Host: {HOST}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(data: bytes) -> str:
    first = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    return first.split(" ", 2)[1] if first.startswith("HTTP/") else (first or "closed")


def bomb_body(size: int) -> tuple[int, list[bytes]]:
    """A valid JSON body of about `size` bytes, `{"stock":[{},{},...,{}]}` (what parses into the most objects
    per byte), in pieces of PIECE bytes: (its exact length, the pieces)."""
    prefix, unit, suffix = b'{"stock":[', b"{},", b"{}]}"
    units = max(0, (size - len(prefix) - len(suffix)) // len(unit))
    stream = prefix + unit * units + suffix
    return len(stream), [stream[i : i + PIECE] for i in range(0, len(stream), PIECE)]


def bomb(port: int, size: int, headers: dict[str, str], chunked: bool, limit_s: float = 60) -> Outcome:
    """Send the bomb as fast as the server takes it; stop at its answer."""
    length, pieces = bomb_body(size)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(length)}
    started = time.monotonic()
    sent = 0
    with socket.create_connection((HOST, port), timeout=15) as sock:
        sock.sendall(_head("PATCH", {"Content-Type": "application/json", **headers, **framing}))
        for piece in [*pieces, b""] if chunked else pieces:
            if time.monotonic() - started > limit_s or select.select([sock], [], [], 0)[0]:
                break  # the server answered (or hung up) while the body was still owed
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            except OSError:
                break  # it hung up after answering
            sent += len(piece)
        sock.settimeout(max(1.0, limit_s - (time.monotonic() - started)))
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""
    return Outcome(_status(answer), sent, time.monotonic() - started)


def slow_head(port: int, every_s: float, limit_s: float = 60) -> Outcome:
    """One header line every `every_s` seconds, never the blank line that ends the head."""
    started = time.monotonic()
    sent = 0
    with socket.create_connection((HOST, port), timeout=limit_s) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        line = 0
        while time.monotonic() - started < limit_s:
            sock.settimeout(every_s)
            try:
                answer = sock.recv(65536)
                return Outcome(_status(answer), sent, time.monotonic() - started)
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                sent += sock.send(b"X-Slow-%d: y\r\n" % line)
            except OSError:
                break
            line += 1
    return Outcome(
        "still open" if time.monotonic() - started >= limit_s else "closed", sent, time.monotonic() - started
    )


def silent(port: int, limit_s: float = 60) -> Outcome:
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=limit_s) as sock:
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            return Outcome("still open", 0, time.monotonic() - started)
        except OSError:
            answer = b""
    return Outcome(_status(answer), 0, time.monotonic() - started)


def slow_body(port: int, token: str, every_s: float = 2.0, limit_s: float = 60) -> Outcome:
    started = time.monotonic()
    sent = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Content-Length": "100"}
    with socket.create_connection((HOST, port), timeout=limit_s) as sock:
        sock.sendall(_head("PATCH", headers))
        while time.monotonic() - started < limit_s and sent < 100:
            sock.settimeout(every_s)
            try:
                answer = sock.recv(65536)
                return Outcome(_status(answer), sent, time.monotonic() - started)
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                sent += sock.send(b" ")
            except OSError:
                break
    return Outcome("still open", sent, time.monotonic() - started)


def parallel(count: int, work: Callable[[], Outcome]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: work(), range(count)))


async def tokens(url: str) -> dict[str, str]:
    from magflow.api.auth import create_token
    from magflow.db.engine import create_engine, session_factory

    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            made = {scope: await create_token(session, f"abuse-{scope}", scope) for scope in ("read", "admin")}
            await session.commit()
    finally:
        await engine.dispose()
    return made


def start_server(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = c.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "MAGFLOW_", "FORWARDED_"))}
    env.update(DATABASE_URL=url, REDIS_URL="", CELERY_BROKER_URL="", LOG_FILE=str(workdir / "emag_sync.log"))
    command = [c.PY, "-m", "magflow", "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    out = (workdir / "serve.out").open("wb")
    proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"magflow serve did not start:\n{(workdir / 'serve.out').read_text()}")
        time.sleep(0.2)


def mib(value: int) -> str:
    return f"{value / 1024 / 1024:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-mib", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--drip-seconds", type=float, default=5.0)
    args = parser.parse_args()
    size = args.bomb_mib * 1024 * 1024

    url = asyncio.run(c.recreate_database("magflow_abuse"))
    made = asyncio.run(tokens(url))
    run_started = time.monotonic()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="magflow-abuse-") as tmp:
        proc, port = start_server(url, Path(tmp))
        try:
            scenarios: list[tuple[str, int, Callable[[], Outcome]]] = [
                ("body bomb, no token", args.parallel, lambda: bomb(port, size, {}, chunked=False)),
                (
                    "body bomb, read token",
                    args.parallel,
                    lambda: bomb(port, size, {"Authorization": f"Bearer {made['read']}"}, chunked=False),
                ),
                (
                    "body bomb, admin, chunked",
                    args.parallel,
                    lambda: bomb(port, size, {"Authorization": f"Bearer {made['admin']}"}, chunked=True),
                ),
                ("slow client (header drip)", 1, lambda: slow_head(port, args.drip_seconds)),
                ("silent client", 1, lambda: silent(port)),
                ("slow body (admin)", 1, lambda: slow_body(port, made["admin"])),
            ]
            for name, count, work in scenarios:
                if time.monotonic() - run_started > DEADLINE_SECONDS:
                    rows.append([name, "skipped: the run's time is up", "", "", "", ""])
                    continue
                with RssSampler(proc.pid) as rss:
                    before = rss.now()
                    outcomes = parallel(count, work)
                    time.sleep(0.2)
                statuses = ", ".join(sorted({o.status for o in outcomes}))
                sent = max(o.sent_bytes for o in outcomes)
                slowest = max(o.answered_after_s for o in outcomes)
                rows.append([f"{name} x{count}", statuses, mib(sent), f"{slowest:.2f} s", mib(before), mib(rss.peak)])
            alive = httpx.get(f"http://{HOST}:{port}/health", timeout=5).status_code
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    header = ["scenario", "answer", "most sent by a client", "slowest answer", "RSS before", "RSS peak"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    total = time.monotonic() - run_started
    print(f"\n/health after the run: {alive}; total {total:.0f} s; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
