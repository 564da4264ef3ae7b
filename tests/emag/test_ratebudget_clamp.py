"""Whoever can write to Redis cannot stall every sync through the rate budget, and a protected Redis works.

A budget key pushed an hour ahead (or filled with garbage) is not believed: the slot is taken from Redis's clock
and a warning says so. A Redis with a password, an ACL user or TLS (`rediss://`) is used through REDIS_URL alone:
by the shared budget and by Celery.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from magflow.emag import RateLimits, RedisRateBudget
from magflow.emag.errors import EmagRateBudgetError
from magflow.emag.ratelimit import MAX_AHEAD_SECONDS

LIMITS = RateLimits(per_second=3, per_minute=180)
PASSWORD = "budget-s3cret"
USER_PASSWORD = "acl-s3cret"


def _key_ahead(redis_url: str, key: str, seconds: float) -> None:
    client = redis.Redis.from_url(redis_url)
    now_s, now_us = client.time()
    client.set(key, str(int((now_s + seconds) * 1_000_000 + now_us)))
    client.close()


async def test_a_key_set_an_hour_ahead_does_not_stall_the_next_request(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisRateBudget(redis_url, LIMITS, key_prefix=redis_prefix) as budget:
        _key_ahead(redis_url, budget.key("main", "default"), 3600)
        wait = await budget.reserve("main", "default")
        following = await budget.reserve("main", "default")
    assert wait <= LIMITS.interval("default")
    assert following <= 2 * LIMITS.interval("default")  # the bogus slot was replaced, not kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{redis_prefix}:emag-budget:main:default" in warnings[0] and "3600 s ahead" in warnings[0]
    assert "REDIS_URL" in warnings[0]


@pytest.mark.parametrize("garbage", ["abc", "inf", "-1e300"])
async def test_garbage_in_a_budget_key_is_replaced_not_fatal(redis_url: str, redis_prefix: str, garbage: str) -> None:
    async with RedisRateBudget(redis_url, LIMITS, key_prefix=redis_prefix) as budget:
        redis.Redis.from_url(redis_url).set(budget.key("main", "default"), garbage)
        assert await budget.reserve("main", "default") <= LIMITS.interval("default")


async def test_a_budget_key_of_the_wrong_type_is_replaced_not_fatal(redis_url: str, redis_prefix: str) -> None:
    async with RedisRateBudget(redis_url, LIMITS, key_prefix=redis_prefix) as budget:
        redis.Redis.from_url(redis_url).rpush(budget.key("main", "default"), "x")
        assert await budget.reserve("main", "default") <= LIMITS.interval("default")


async def test_a_429_penalty_is_honoured_but_bounded(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisRateBudget(redis_url, LIMITS, key_prefix=redis_prefix) as budget:
        await budget.penalize("main", "default", 30)
        assert 29 <= await budget.reserve("main", "default") <= 31
        await budget.penalize("fbe", "default", 3600)  # a hostile Retry-After
        assert await budget.reserve("fbe", "default") <= MAX_AHEAD_SECONDS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(directory: Path, config: list[str]) -> Iterator[int]:
    """redis-server with `config` (PORT stands for a free port) until the test ends; yields the port."""
    port = _free_port()
    conf = directory / "redis.conf"
    logfile = directory / "redis.log"
    lines = [f"dir {directory}", f"logfile {logfile}", 'save ""', "appendonly no", "bind 127.0.0.1", *config]
    conf.write_text("\n".join(lines).replace("PORT", str(port)) + "\n")
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, logfile.read_text() if logfile.exists() else "redis-server exited"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[int]:
    """A Redis of this test's own that wants a password, with an ACL user limited to magflow's keys."""
    acl_user = f"user magflow on >{USER_PASSWORD} ~magflow:* &* -@all +@read +@write +@scripting +@connection +time"
    yield from _start_redis(tmp_path, ["port PORT", f"requirepass {PASSWORD}", acl_user])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Redis of this test's own that speaks only TLS, with a password, and the CA that signed its certificate."""
    if shutil.which("openssl") is None or shutil.which("redis-server") is None:
        pytest.skip("openssl and redis-server are needed for a TLS Redis")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    config = ["port 0", "tls-port PORT", f"tls-cert-file {cert}", f"tls-key-file {key}", f"tls-ca-cert-file {cert}",
              "tls-auth-clients no", f"requirepass {PASSWORD}"]  # fmt: skip
    for port in _start_redis(tmp_path, config):
        yield port, cert


@pytest.mark.parametrize("userinfo", [f":{PASSWORD}@", f"magflow:{USER_PASSWORD}@"])
async def test_a_password_or_an_acl_user_in_redis_url_is_used(protected_redis: int, userinfo: str) -> None:
    url = f"redis://{userinfo}127.0.0.1:{protected_redis}/0"
    async with RedisRateBudget(url, LIMITS) as budget:
        assert await budget.reserve("main", "default") == 0
        assert 0 < await budget.reserve("main", "default") <= LIMITS.interval("default")


async def test_a_wrong_redis_password_is_one_error_that_hides_it(protected_redis: int) -> None:
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{protected_redis}/0"
    async with RedisRateBudget(url, LIMITS) as budget:
        with pytest.raises(EmagRateBudgetError) as caught:
            await budget.reserve("main", "default")
    message = str(caught.value)
    assert f"redis://:***@127.0.0.1:{protected_redis}/0" in message and "check REDIS_URL" in message
    assert PASSWORD not in message


async def test_rediss_urls_work_for_the_budget_and_for_celery(tls_redis: tuple[int, Path]) -> None:
    from magflow.config import load_settings
    from magflow.worker.celery_app import create_app

    port, ca = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    async with RedisRateBudget(url, LIMITS) as budget:
        assert await budget.reserve("main", "default") == 0
    app = create_app(load_settings(_env_file=None, redis_url=url))
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
    assert app.backend.client.ping()
