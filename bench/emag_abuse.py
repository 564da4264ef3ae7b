"""A hostile eMAG against magflow's client: what a dripping server and huge pages cost (run by hand, never as a test).

Run: .venv/bin/python bench/emag_abuse.py [--page-mib 200] [--drip-every 2] [--uncapped]

A server in its own process (127.0.0.1 only) answers product_offer/read with:
- drip: a valid page, one byte every `--drip-every` s (each read waits less than the read timeout), read with a
  5 s read timeout, 2 s connect timeout, one attempt; then with 3 attempts and a 20 s deadline;
- page: a valid `--page-mib` MiB page (one offer with a huge description), with Content-Length, then without;
- gzip bomb: the same page gzipped (a few hundred KiB on the wire);
each read with the default EMAG_MAX_RESPONSE_BYTES (32 MiB); `--uncapped` also reads the page with the cap at 1 GiB,
as the client read every answer before the cap existed.

Prints, per scenario, what the client raised, after how long, how much the server sent before the client hung up,
and this (client) process's RSS before and at its peak (sampled every 20 ms). The issue's audit measured, before
the fixes: 80 s held by a server dripping a byte every 2 s (5 s timeout, one attempt), 1.47 GB for a 200 MB page.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from magflow.emag import AccountConfig, EmagClient, EmagError, InProcessRateBudget, RateLimits

MIB = 1024 * 1024
FAST = RateLimits(per_second=1000, per_minute=60_000)
PAGE_START = b'{"isError":false,"messages":[],"results":[{"id":1,"description":"'
PAGE_END = b'"}]}'


# -- the hostile server (its own process: `emag_abuse.py --serve KIND ...`) -------------------------------------


def _page(mib: int) -> Iterator[bytes]:
    yield PAGE_START
    for _ in range(mib):
        yield b"x" * MIB
    yield PAGE_END


def _answer(conn: socket.socket, kind: str, mib: int, every: float, bomb: bytes) -> int:
    """Serve one request; return the body bytes sent before the client hung up."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(65536)
        if not chunk:
            return 0
        request += chunk
    head, _, body = request.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:  # read the whole request: closing on unread bytes would reset the connection
        body += conn.recv(65536)
    sent = 0
    answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    try:
        if kind == "drip":
            body = PAGE_START + b" " * 200 + PAGE_END
            conn.sendall(f"{answer}Content-Length: {len(body)}\r\n\r\n".encode())
            for byte in body:
                time.sleep(every)
                conn.sendall(bytes([byte]))
                sent += 1
        elif kind == "bomb":
            conn.sendall(f"{answer}Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n".encode())
            conn.sendall(bomb)
            sent = len(bomb)
        else:
            size = len(PAGE_START) + mib * MIB + len(PAGE_END)
            framing = f"Content-Length: {size}\r\n" if kind == "page" else ""
            conn.sendall(f"{answer}{framing}\r\n".encode())
            for piece in _page(mib):
                conn.sendall(piece)
                sent += len(piece)
    except OSError:
        pass
    return sent


def serve(kind: str, mib: int, every: float) -> None:
    bomb = gzip.compress(b"".join(_page(mib)), compresslevel=9) if kind == "bomb" else b""
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            sent = _answer(conn, kind, mib, every, bomb)
        print(sent, flush=True)  # read by the measuring process


# -- the measurements -------------------------------------------------------------------------------------------


class RssSampler:
    """The peak RSS of this process, sampled in a background thread."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.before = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int

    def sent(self, settle: float) -> list[int]:
        """Body bytes the server sent, per request (it reports each when it notices the client hung up, which a
        dripping server does at its next byte: `settle` seconds)."""
        time.sleep(settle)
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return [int(line) for line in out.split()]


def start(kind: str, mib: int, every: float) -> Server:
    args = [sys.executable, __file__, "--serve", kind, "--page-mib", str(mib), "--drip-every", str(every)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return Server(process, int(process.stdout.readline()))


async def read_page(port: int, **config: object) -> str:
    settings: dict[str, object] = {"timeout_seconds": 120.0, "connect_timeout_seconds": 10.0, "max_attempts": 1}
    settings.update(config)
    account = AccountConfig("main", "user", "password", base_url=f"http://127.0.0.1:{port}/api-3", **settings)  # type: ignore[arg-type]
    async with EmagClient(account, budget=InProcessRateBudget(FAST)) as client:
        try:
            page = await client.read_products_page(1)
        except EmagError as exc:
            return f"{type(exc).__name__}: {str(exc)[:150]}"
        return f"read: {len(page.offers)} offer(s)"


def scenario(title: str, kind: str, mib: int, every: float, **config: object) -> None:
    server = start(kind, mib, every)
    try:
        with RssSampler() as rss:
            started = time.monotonic()
            outcome = asyncio.run(read_page(server.port, **config))
            elapsed = time.monotonic() - started
    finally:
        sent = server.sent(2 * every + 0.5 if kind == "drip" else 0.5)
    print(f"{title}\n  {outcome}")
    print(
        f"  after {elapsed:.1f} s; {len(sent)} request(s), server sent {', '.join(_size(s) for s in sent) or '-'} "
        f"before the client hung up; client RSS {rss.before / MIB:.0f} MiB -> peak {rss.peak / MIB:.0f} MiB"
    )


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page-mib", type=int, default=200)
    parser.add_argument("--drip-every", type=float, default=2.0)
    parser.add_argument("--uncapped", action="store_true", help="also read the page with the cap at 1 GiB")
    parser.add_argument("--serve", choices=["drip", "page", "chunked", "bomb"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.page_mib, args.drip_every)
        return
    mib, every = args.page_mib, args.drip_every
    scenario(f"drip: one byte every {every:g} s, 5 s read timeout, one attempt", "drip", mib, every,
             timeout_seconds=5.0, connect_timeout_seconds=2.0)  # fmt: skip
    scenario(f"drip: one byte every {every:g} s, 3 attempts, 20 s deadline", "drip", mib, every,
             timeout_seconds=5.0, connect_timeout_seconds=2.0, max_attempts=3, deadline_seconds=20.0,
             backoff_base_seconds=0.5)  # fmt: skip
    scenario(f"page: {mib} MiB with Content-Length, default cap (32 MiB)", "page", mib, every)
    scenario(f"page: {mib} MiB without Content-Length, default cap (32 MiB)", "chunked", mib, every)
    scenario(f"gzip bomb: {mib} MiB unpacked, default cap (32 MiB)", "bomb", mib, every)
    if args.uncapped:
        scenario(f"page: {mib} MiB, cap 1 GiB (as before the cap)", "chunked", mib, every,
                 max_response_bytes=1024 * MIB)  # fmt: skip


if __name__ == "__main__":
    main()
