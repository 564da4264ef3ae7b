"""The eMAG sandbox as a benchmark child process: uvloop, no access log (bench/_common.py starts it)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading

from magflow.sandbox import SandboxServer, SandboxState


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--products", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-rate-limit", action="store_true")
    args = parser.parse_args()
    # eMAG's servers do not share our CPUs; the emulator standing in for them is scheduled first, so its
    # rate limiter stamps requests when they arrive, not when two busy cores get round to it.
    with contextlib.suppress(PermissionError):
        os.nice(-10)
    off = ("rate_per_second", "rate_per_minute", "order_rate_per_second", "order_rate_per_minute")
    limits = dict.fromkeys(off) if args.no_rate_limit else {}
    state = SandboxState(products_per_account=args.products, seed=args.seed, **limits)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SandboxServer(state, port=args.port):
        stop.wait()


if __name__ == "__main__":
    main()
