"""The operator commands (sync, resume, sandbox, test-connection), registered on the `magflow` app."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from magflow.accounts import AccountNotConfiguredError, configured_accounts
from magflow.cli import app, run
from magflow.config import get_settings
from magflow.emag import AccountConfig

# Piped or logged output is not cut at 80 columns; a terminal gets its own width.
console = Console(width=None if sys.stdout.isatty() else 160)

from magflow.api.cli import serve, token_app  # noqa: E402  (after `app` exists; the API's commands)

app.add_typer(token_app, name="token")
app.command("serve")(serve)


@contextlib.contextmanager
def sandbox_accounts(products: int, rate: float | None) -> Iterator[dict[str, AccountConfig]]:
    """The built-in eMAG sandbox on a free port, with both seller accounts."""
    from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState

    state = SandboxState(
        products_per_account=products,
        seed=1,
        rate_per_second=rate,
        rate_per_minute=int(rate * 60) if rate else None,
    )
    server = SandboxServer(state, host="127.0.0.1", port=0)
    server.start()
    try:
        yield {
            account: AccountConfig(account=account, username=user, password=password, base_url=server.base_url)
            for account, (user, password) in SANDBOX_ACCOUNTS.items()
        }
    finally:
        server.stop()


@contextlib.contextmanager
def _accounts(
    sandbox: bool | None, products: int, rate: float | None, implicit_sandbox: bool = True
) -> Iterator[dict[str, AccountConfig]]:
    settings = get_settings()
    use_sandbox = sandbox
    if use_sandbox is None:
        use_sandbox = not settings.any_credentials
        if use_sandbox and (settings.database_url or not implicit_sandbox):
            # Sandbox products must not slip into a real catalogue because credentials were forgotten.
            raise AccountNotConfiguredError(
                "no eMAG credentials are set (EMAG_MAIN_USERNAME/EMAG_MAIN_PASSWORD, EMAG_FBE_...): set them, "
                "or pass --sandbox to sync from the built-in sandbox into "
                + ("DATABASE_URL's database" if settings.database_url else "the database")
            )
    rate = rate or None
    if use_sandbox:
        console.print(
            f"[yellow]No eMAG credentials are set: syncing from the built-in eMAG sandbox "
            f"({products} products per account, {rate or 'no'} requests/s limit). "
            "Set EMAG_MAIN_USERNAME/EMAG_MAIN_PASSWORD (and FBE) to sync real accounts.[/yellow]"
        )
        with sandbox_accounts(products, rate) as configs:
            yield configs
    else:
        yield configured_accounts(settings)


@contextlib.asynccontextmanager
async def _session(migrate: bool = False) -> AsyncIterator[Any]:
    """A session on magflow's database; `migrate` first brings the schema up to date (the commands that write)."""
    from magflow.db.engine import dispose_engine, get_db, resolve_database_url
    from magflow.db.migrate import upgrade

    if migrate:
        await upgrade(resolve_database_url())
    try:
        async with get_db() as db:
            yield db
    finally:
        await dispose_engine()


async def _settle_dead_runs(db: Any) -> None:
    """A run whose process died (even by SIGKILL) is shown, and resumed, as interrupted at once: its account
    lock went with its connection, so there is no heartbeat timeout to wait for."""
    from magflow.sync.runs import settle_dead_runs

    if await settle_dead_runs(db):
        await db.commit()


def _summary(result: dict[str, Any]) -> None:
    table = Table(title=f"Sync {result['sync_id']} — {result['mode']} — {result['status']}", box=box.SIMPLE_HEAD)
    for column in ("account", "status", "processed", "created", "updated", "unchanged", "failed", "missing"):
        table.add_column(column, justify="right" if column not in ("account", "status") else "left")
    for account, numbers in result["accounts"].items():
        table.add_row(
            account,
            numbers["status"],
            *(str(numbers[k]) for k in ("total_processed", "created", "updated", "unchanged", "failed", "missing")),
        )
    table.add_row(
        "total",
        result["status"],
        *(str(result[k]) for k in ("total_processed", "created", "updated", "unchanged", "failed", "missing")),
        style="bold",
    )
    console.print(table)
    console.print(f"duration {result['duration_seconds']:.1f}s")
    for error in result["errors"][:10]:
        console.print(f"[red]error[/red] {error}")
    if result.get("error_message"):
        console.print(f"[red]{result['error_message']}[/red]")


async def _sync(
    configs: dict[str, AccountConfig],
    account: str,
    mode: str,
    strategy: str,
    max_pages: int | None,
    items_per_page: int,
    include_inactive: bool,
    filters: Any,
    triggered_by: str,
) -> dict[str, Any]:
    from magflow.sync import EmagProductSyncService

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} products"),
        TextColumn("{task.fields[rate]} /s"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def on_progress(acct: str, p: dict[str, Any]) -> None:
            if acct not in tasks:
                tasks[acct] = bars.add_task(acct.upper(), total=p["total_items"] or None, rate="0")
            bars.update(
                tasks[acct],
                completed=p["current_item"],
                total=max(p["total_items"], p["current_item"]) or None,
                rate=f"{p['items_per_second']:.0f}",
            )

        async with (
            _session(migrate=True) as db,
            EmagProductSyncService(
                db=db,
                account_type=account,
                conflict_strategy=strategy,
                account_configs=configs,
                triggered_by=triggered_by,
                on_progress=on_progress,
            ) as svc,
        ):
            return await svc.sync_all_products(
                mode=mode,
                max_pages=max_pages,
                items_per_page=items_per_page,
                include_inactive=include_inactive,
                filters=filters,
            )


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]magflow: {message}[/red]")
    return typer.Exit(code)


@app.command()
def sync(
    account: str = typer.Option("both", help="main, fbe or both"),
    mode: str = typer.Option("full", help="full, incremental or selective"),
    conflict_strategy: str = typer.Option("emag_priority", help="emag_priority, local_priority, newest_wins, manual"),
    max_pages: int | None = typer.Option(None, help="incremental/selective: read at most this many pages"),
    items_per_page: int = typer.Option(100, help="1-100"),
    include_inactive: bool = typer.Option(False, help="incremental/selective: include inactive offers"),
    ids: list[int] = typer.Option([], "--id", help="selective: an offer id (repeatable)"),
    skus: list[str] = typer.Option([], "--sku", help="selective: a part_number (repeatable)"),
    keys: list[str] = typer.Option([], "--part-number-key", help="selective: a part_number_key (repeatable)"),
    status: int | None = typer.Option(None, help="selective: offer status 0, 1 or 2"),
    sandbox: bool | None = typer.Option(None, "--sandbox/--no-sandbox", help="default: sandbox when no credentials"),
    sandbox_products: int = typer.Option(1000, help="products per account in the built-in sandbox"),
    sandbox_rate: float = typer.Option(3.0, help="the sandbox's requests/s limit per account (eMAG's is 3)"),
) -> None:
    """Sync products from eMAG into the local database, with a progress bar per account and a summary."""
    from magflow.sync import SelectiveFilters, SyncAlreadyRunningError, SyncRequestError

    filters = SelectiveFilters(ids=ids, skus=skus, part_number_keys=keys, status=status)
    try:
        with _accounts(sandbox, sandbox_products, sandbox_rate) as configs:
            result = run(
                _sync(
                    configs,
                    account,
                    mode,
                    conflict_strategy,
                    max_pages,
                    items_per_page,
                    include_inactive,
                    filters,
                    "cli",
                )
            )
    except (SyncAlreadyRunningError, SyncRequestError, AccountNotConfiguredError) as exc:
        raise _fail(str(exc), 2) from None
    _summary(result)
    if result["status"] not in ("completed",):
        raise typer.Exit(1)


@app.command()
def resume(
    sandbox: bool | None = typer.Option(None, "--sandbox/--no-sandbox"),
    sandbox_products: int = typer.Option(1000),
    sandbox_rate: float = typer.Option(3.0),
) -> None:
    """Resume every interrupted or failed sync from its last checkpoint."""
    from magflow.models import EmagSyncLog
    from magflow.sync.runs import resumable_runs

    async def pending() -> list[tuple[str, str, dict[str, Any], str]]:
        """Each unfinished account run, with the conflict strategy its run was started with."""
        async with _session() as db:
            await _settle_dead_runs(db)
            todo = []
            for row in await resumable_runs(db):
                origin = await db.get(EmagSyncLog, row.sync_id)
                strategy = (origin.parameters or {}).get("conflict_strategy") if origin else None
                todo.append((row.account_type, row.mode, dict(row.checkpoint), strategy or "emag_priority"))
            return todo

    todo = run(pending())
    if not todo:
        console.print("nothing to resume: every sync finished")
        return
    with contextlib.ExitStack() as stack:
        try:
            configs = stack.enter_context(_accounts(sandbox, sandbox_products, sandbox_rate, implicit_sandbox=False))
        except AccountNotConfiguredError as exc:
            raise _fail(str(exc), 2) from None
        for account, mode, checkpoint, strategy in todo:
            fp = checkpoint.get("fingerprint", {})
            console.print(f"resuming the {mode} sync of {account} from page {checkpoint.get('next_page')}")
            result = run(
                _sync(
                    configs,
                    account,
                    mode,
                    strategy,
                    fp.get("max_pages"),
                    fp.get("items_per_page", 100),
                    not any("status" in s for s in fp.get("filters", {}).get("sets", [])),
                    None,
                    "cli:resume",
                )
            )
            _summary(result)


@app.command("sandbox")
def sandbox_command(
    port: int = typer.Option(8099),
    products: int = typer.Option(10000),
    seed: int = typer.Option(1),
    host: str = typer.Option("127.0.0.1"),
    rate_limit: bool = typer.Option(True, "--rate-limit/--no-rate-limit", help="eMAG's 3/s and 12/s limits"),
    hostile_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="fraction of offers with hostile values (NUL, lone surrogates...), by --seed"
    ),
    body_style: str | None = typer.Option(
        None, help="what a request body is read as: top-level (default), wrapped/data, accept-all/lenient, form"
    ),
    error_style: str | None = typer.Option(None, help="iserror200 (default) or http400 for rejected filters"),
    paging_overflow: str | None = typer.Option(None, help="itemsPerPage > 100: cap (default) or error"),
    product_sort: str | None = typer.Option(None, help="id_asc (default), id_desc, modified_asc, modified_desc"),
    insert_at: str | None = typer.Option(None, help="where new offers enter an id-sorted listing: end, front, random"),
    sparse_products: bool | None = typer.Option(None, "--sparse-products", help="offers with keys absent, nulls..."),
    empty_objects_as_lists: bool | None = typer.Option(None, "--empty-objects-as-lists", help="PHP's [] for {}"),
    platform: str | None = typer.Option(None, help="ro (default), bg or hu: currency, language, VAT rates"),
    currency: str | None = typer.Option(None, help="override the platform's currency (e.g. BGN)"),
    iserror: str | None = typer.Option(None, help='isError as bool (default), "string" or "missing"'),
    errors_key: bool | None = typer.Option(None, "--errors-key/--no-errors-key", help='"errors": [] beside messages'),
    message_objects: bool | None = typer.Option(None, "--message-objects", help="messages as {message, code}"),
    results_object: bool | None = typer.Option(None, "--results-object", help='results as {"0": ..., "1": ...}'),
    gzip: bool | None = typer.Option(None, "--gzip", help="gzip every API answer"),
    rate_scope: str | None = typer.Option(None, help="account (default) or ip: MAIN and FBE share one budget"),
    count_rejected: bool | None = typer.Option(None, "--count-rejected", help="429s use budget too"),
    rate_window: str | None = typer.Option(None, help="sliding (default) or fixed (clock-aligned) windows"),
    limit_before_auth: bool | None = typer.Option(None, "--limit-before-auth", help="wrong passwords use budget"),
    retry_after: bool | None = typer.Option(None, "--retry-after", help="429s carry Retry-After"),
    fault: list[str] = typer.Option(
        [], help="KIND[:COUNT][@ROUTE], repeatable: e.g. captive_html:3, applied_then_500@order/acknowledge"
    ),
) -> None:
    """Run the built-in eMAG marketplace sandbox (an HTTP server speaking the eMAG API)."""
    from magflow.sandbox.server import run_cli

    switches: dict[str, Any] = {
        name: value
        for name, value in {
            "body_style": body_style, "error_style": error_style, "paging_overflow": paging_overflow,
            "product_sort": product_sort, "insert_at": insert_at, "sparse_products": sparse_products,
            "empty_objects_as_lists": empty_objects_as_lists, "platform": platform, "currency": currency,
            "iserror": iserror, "errors_key": errors_key, "message_objects": message_objects,
            "results_object": results_object, "gzip": gzip, "rate_scope": rate_scope, "count_rejected": count_rejected,
            "rate_window": rate_window, "limit_before_auth": limit_before_auth, "retry_after": retry_after,
        }.items()
        if value is not None
    }  # fmt: skip
    try:
        run_cli(
            port=port, products=products, seed=seed, host=host, rate_limit=rate_limit, hostile_rate=hostile_rate,
            faults=fault, **switches,
        )  # fmt: skip
    except ValueError as exc:
        raise _fail(f"sandbox: {exc}", 2) from None


ACCOUNT_CHOICES = ("main", "fbe", "both")
_STATE_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "info": "dim"}


@app.command("test-connection")
def test_connection(
    account: str = typer.Option("both", help="main, fbe or both (the configured ones)"),
    deep: bool = typer.Option(
        False,
        "--deep",
        help="also check the IP whitelist, body style, count vs listing, platform, clock, rate-limit "
        "headers, and predict a full sync's duration",
    ),
    detect: bool = typer.Option(
        False, "--detect", help="try the request formats json, json-data, form and record the first eMAG honours"
    ),
) -> None:
    """Check an account's credentials, IP whitelisting, reachability and paging (no secret is printed)."""
    if account not in ACCOUNT_CHOICES:
        raise _fail(f"--account must be main, fbe or both (got {account!r})", 2)
    from magflow.accounts import account_config, configured_accounts

    settings = get_settings()
    try:
        if account == "both":
            configs = configured_accounts(settings)
            if not configs:
                account_config(settings, "main")  # raises, naming the settings to set
        else:
            configs = {account: account_config(settings, "main" if account == "main" else "fbe")}
    except AccountNotConfiguredError as exc:
        raise _fail(str(exc), 2) from None
    failed = run(_connection_checks(configs, deep=deep, detect=detect))
    if failed:
        raise typer.Exit(1)


async def _connection_checks(configs: dict[str, AccountConfig], *, deep: bool, detect: bool) -> bool:
    """Run the asked checks on every account (in parallel); print them; True when one failed."""
    import asyncio

    from magflow.accounts import rate_budget, record_request_format, with_recorded_formats
    from magflow.emag import EmagClient, deep_check, detect_request_format

    settings = get_settings()
    failed = False
    # Nothing can have been recorded in an embedded database that was never created: do not create one to look.
    recorded_anywhere = settings.database_url or (settings.magflow_data_dir / "pgdata").exists()
    async with _session(migrate=detect) if detect or recorded_anywhere else _no_session() as db:
        try:
            if db is not None:
                configs = await with_recorded_formats(db.bind, configs)
        except Exception as exc:  # the check itself needs no database: go on with the settings alone
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
            console.print(
                f"[yellow]could not read the request formats recorded by --detect ({reason}); using the settings "
                "alone (`magflow db upgrade` creates the schema)[/yellow]"
            )
        budget = rate_budget(settings)
        try:
            if detect:
                assert db is not None  # --detect always opens the database: it records what it finds
                detections = await asyncio.gather(*(detect_request_format(c, budget) for c in configs.values()))
                _detection_table(detections)
                for detection in detections:
                    if detection.found is None:
                        failed = True
                        console.print(f"[red]{detection.account}: {detection.message}[/red]", soft_wrap=True)
                        continue
                    await record_request_format(db.bind, detection, "`magflow test-connection --detect`")
                    configs[detection.account] = _recorded(configs[detection.account], detection.found)
                    console.print(f"[green]{detection.account}: recorded request format {detection.found}[/green]")
            if deep:

                async def one(config: AccountConfig) -> Any:
                    async with EmagClient(config, budget=budget) as client:
                        return await deep_check(client)

                reports = await asyncio.gather(*(one(c) for c in configs.values()))
                _deep_table(reports)
                failed = failed or not all(r.ok for r in reports)
            elif not detect:

                async def quick(config: AccountConfig) -> Any:
                    async with EmagClient(config, budget=budget) as client:
                        return await client.check_connection()

                for verdict in await asyncio.gather(*(quick(c) for c in configs.values())):
                    console.print(f"{verdict.account}: {verdict.status} — {verdict.message}", soft_wrap=True)
                    failed = failed or not verdict.ok
        finally:
            await budget.aclose()
    return failed


@contextlib.asynccontextmanager
async def _no_session() -> AsyncIterator[None]:
    yield None


def _recorded(config: AccountConfig, found: Any) -> AccountConfig:
    """The config as a sync will now build it: an account setting still wins over the recorded style."""
    import dataclasses

    if config.request_format_source == "account_setting":
        if config.request_format != found:
            console.print(
                f"[yellow]{config.env_prefix}_REQUEST_FORMAT={config.request_format} is set and overrides the "
                f"detected {found}: set it to {found}, or unset it[/yellow]"
            )
        return config
    return dataclasses.replace(config, request_format=found, request_format_source="recorded")


def _detection_table(detections: list[Any]) -> None:
    table = Table(title="request format detection", box=box.SIMPLE_HEAD)
    for column in ("account", "request format", "honoured", "what eMAG showed"):
        table.add_column(column)
    for detection in detections:
        for trial in detection.trials:
            works = "[green]yes[/green]" if trial.works else "[red]no[/red]"
            table.add_row(detection.account, trial.request_format, works, trial.detail)
        if detection.stopped is not None:
            table.add_row(detection.account, "-", "[red]stopped[/red]", detection.stopped.message)
    console.print(table)


def _deep_table(reports: list[Any]) -> None:
    from magflow.emag import combined_estimate
    from magflow.emag.deep import describe_duration

    table = Table(title="eMAG connection — deep check", box=box.SIMPLE_HEAD, show_lines=False)
    for column in ("account", "check", "result", "what to do"):
        table.add_column(column, overflow="fold")
    for report in reports:
        for line in report.checks:
            style = _STATE_STYLE[line.state]
            table.add_row(report.account, line.name, f"[{style}]{line.result}[/{style}]", line.advice or "")
    both = combined_estimate(reports)
    if both is not None:
        parallel, serial = both
        table.add_row(
            "both", "full sync estimate",
            f"about {describe_duration(parallel)} with both accounts in parallel",
            f"{describe_duration(serial)} if eMAG counts both accounts against one budget",
        )  # fmt: skip
    console.print(table)


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a sync id (a UUID as shown by `magflow history`)") from None


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


@app.command()
def status() -> None:
    """Show the running sync (live, from any process) and the last syncs."""
    from magflow.reports import sync_status

    async def read() -> dict[str, Any]:
        async with _session() as db:
            await _settle_dead_runs(db)
            return await sync_status(db, get_settings())

    report = run(read())
    for account, info in report.get("request_formats", {}).items():
        console.print(f"{account}: request format {_format_origin(account, info)}")
    if not report["is_running"]:
        console.print("no product sync is running")
    for current in report.get("active_syncs") or []:
        console.print(
            f"[bold]{current['status']}[/bold] {current['id']} {current['operation']} "
            f"account={current['account_type']} "
            f"{current.get('processed_items', 0)}/{current.get('total_items', 0)} "
            f"({current.get('percentage', 0)}%) ETA {_short(current.get('estimated_completion_at'))}"
        )
    _history_table("recent syncs", report["recent_syncs"])


def _format_origin(account: str, info: dict[str, Any]) -> str:
    style, source = info["request_format"], info["source"]
    detected = (
        f"detected {_short(info['detected_at'])} by {info.get('detected_by') or 'magflow'}"
        if info.get("detected_format")
        else None
    )
    if source == "account_setting":
        shown = f"{style} (EMAG_{account.upper()}_REQUEST_FORMAT)"
        if detected and info["detected_format"] != style:
            shown += f"; --detect found {info['detected_format']} ({detected})"
        return shown
    if source == "recorded":
        return f"{style} ({detected})"
    return f"{style} ({'EMAG_REQUEST_FORMAT' if source == 'setting' else 'default'}; not detected)"


def _history_table(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in (
        "started",
        "id",
        "account",
        "operation",
        "status",
        "processed",
        "created",
        "updated",
        "failed",
        "duration",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            _short(r.get("started_at")),
            str(r["id"])[:8],
            r["account_type"],
            r["operation"],
            r["status"],
            str(r.get("processed_items", 0)),
            str(r.get("created_items", 0)),
            str(r.get("updated_items", 0)),
            str(r.get("failed_items", 0)),
            f"{r.get('duration_seconds') or 0:.1f}s",
        )
    console.print(table)


@app.command()
def history(
    limit: int = typer.Option(20, min=1, max=100),
    account: str | None = typer.Option(None, help="main, fbe or both"),
    status: str | None = typer.Option(None, help="completed, partial, failed, interrupted, cancelled, ..."),
) -> None:
    """List past syncs, newest first."""
    from magflow.reports import history as read_history

    async def read() -> list[dict[str, Any]]:
        async with _session() as db:
            await _settle_dead_runs(db)
            return await read_history(db, limit=limit, account_type=account, status=status)

    _history_table("sync history", run(read()))
