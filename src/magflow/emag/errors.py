"""Every way an eMAG call can fail, typed. `str()` is one sentence: what happened and what to do.

No message ever carries a credential: errors are built from eMAG's answer and the account name only,
and `redact` scrubs whatever eMAG might echo back. What eMAG wrote goes through `emag_text`: one line, and
short, wherever the error ends up (the log, `emag_sync_logs`, API answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from magflow.observability.logging import escape_controls


def _where(route: str, page: int | None) -> str:
    return f"{route} page {page}" if page is not None else route


class EmagError(Exception):
    """Base class. `account` and `route` say which call failed; `page` is set for page reads."""

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, account: str, route: str = "", page: int | None = None) -> None:
        message = emag_text(message, MESSAGE_LIMIT)  # the parts from eMAG are capped already; this is the backstop
        super().__init__(message)
        self.message = message
        self.account = account
        self.route = route
        self.page = page

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account!r}, page={self.page!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, so default pickling (cls(*args)) would fail; Celery
        # and multiprocessing pickle exceptions.
        return (_restore, (type(self), self.message, self.__dict__.copy()))


def _restore(cls: type[EmagError], message: str, state: dict[str, Any]) -> EmagError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class EmagAuthError(EmagError):
    kind = "auth_failed"

    def __init__(self, *, account: str, route: str = "", page: int | None = None, status: int | None = None) -> None:
        prefix = f"EMAG_{account.upper()}"
        super().__init__(
            f"eMAG refused the credentials of account {account}: check {prefix}_USERNAME and "
            f"{prefix}_PASSWORD and that the user has API rights in the eMAG seller portal",
            account=account,
            route=route,
            page=page,
        )
        self.status = status


class EmagIpNotWhitelistedError(EmagError):
    kind = "ip_not_whitelisted"

    def __init__(self, *, account: str, ip: str | None, route: str = "", page: int | None = None) -> None:
        ip = emag_text(ip, IP_TEXT_LIMIT) if ip else ip
        shown = ip or "(eMAG did not say which)"
        super().__init__(
            f"eMAG rejected this server's IP {shown} for account {account}: whitelist it in the eMAG seller portal",
            account=account,
            route=route,
            page=page,
        )
        self.ip = ip


class EmagRateLimitedError(EmagError):
    """Raised only after every retry of a 429 was spent."""

    kind = "rate_limited"

    def __init__(self, *, account: str, route: str, page: int | None, attempts: int) -> None:
        super().__init__(
            f"eMAG kept answering 429 (rate limit exceeded) to {_where(route, page)} of account {account} "
            f"after {attempts} attempts: another client is spending this account's budget; stop it or lower "
            "EMAG_RATE_LIMIT_PER_SECOND / EMAG_RATE_LIMIT_PER_MINUTE, then retry",
            account=account,
            route=route,
            page=page,
        )
        self.attempts = attempts


class EmagTransientError(EmagError):
    """eMAG or the network failed in a way that retrying may fix; raised only after retries ran out.

    `network` is True when eMAG never answered (connect error, timeout, reset); `advice` replaces the default
    advice when the failure says more (an HTML page answering 200 means a proxy, not eMAG, may be answering)."""

    kind = "transient"

    def __init__(
        self,
        *,
        account: str,
        route: str,
        page: int | None,
        reason: str,
        attempts: int,
        network: bool = False,
        advice: str | None = None,
    ) -> None:
        if advice is None:
            advice = (
                "check this server's network access to eMAG, or raise EMAG_REQUEST_TIMEOUT_SECONDS if pages are slow"
                if network
                else "eMAG is having trouble; retry later"
            )
        super().__init__(
            f"eMAG failed {_where(route, page)} for account {account} after {attempts} attempt"
            f"{'s' if attempts != 1 else ''} (last: {reason}): {advice}",
            account=account,
            route=route,
            page=page,
        )
        self.reason = reason
        self.attempts = attempts
        self.network = network


class EmagRequestError(EmagError):
    """eMAG refused the request itself (400, 404, ...): sending it again will not help."""

    kind = "request"

    def __init__(
        self,
        *,
        account: str,
        route: str,
        page: int | None,
        status: int,
        emag_message: str,
        fields: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        emag_message = emag_text(emag_message)
        kept = [(emag_text(field) if field else None, emag_text(text)) for field, text in fields[:EMAG_TEXTS_LIMIT]]
        details = "; ".join(f"{field}: {text}" if field else text for field, text in kept) + _more(fields)
        shown = emag_text(emag_message + (f" ({details})" if details else ""), 2 * EMAG_TEXT_LIMIT)
        advice = "check the base URL" if status == 404 else "fix the request's filters or paging"
        super().__init__(
            f"eMAG rejected {_where(route, page)} for account {account} "
            f"with HTTP {status} \u201c{shown}\u201d: {advice}",
            account=account,
            route=route,
            page=page,
        )
        self.status = status
        self.emag_message = emag_message
        self.fields = kept

    @property
    def field(self) -> str | None:
        return next((field for field, _ in self.fields if field), None)


class EmagApiError(EmagError):
    """eMAG answered 200 with `isError: true`: it understood the request and refused it. `messages` holds eMAG's
    messages and its `errors` list (as `field: text`); `fields` the `errors` list as (field, text) pairs."""

    kind = "api"

    def __init__(
        self,
        *,
        account: str,
        route: str,
        page: int | None,
        messages: Sequence[str],
        fields: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        kept = [emag_text(message) for message in messages[:EMAG_TEXTS_LIMIT]]
        shown = emag_text("; ".join(kept) + _more(messages), 2 * EMAG_TEXT_LIMIT) or "no message"
        super().__init__(
            f"eMAG answered {_where(route, page)} for account {account} with an error \u201c{shown}\u201d: "
            "act on eMAG's message, the request was not applied as sent",
            account=account,
            route=route,
            page=page,
        )
        self.messages = kept
        self.fields = [
            (emag_text(field) if field else None, emag_text(text)) for field, text in fields[:EMAG_TEXTS_LIMIT]
        ]

    @property
    def field(self) -> str | None:
        return next((field for field, _ in self.fields if field), None)


class EmagRateBudgetError(EmagError):
    """The shared rate budget's Redis failed or did not answer in time, so no request may be sent: sending
    without the budget could exceed eMAG's limit for every process sharing the account.

    `redis_url` is shown with its password replaced by `***`."""

    kind = "rate_budget"

    def __init__(self, *, account: str, redis_url: str, reason: str) -> None:
        super().__init__(
            f"Redis at {redis_url} {reason} (the shared rate budget of account {account}): check REDIS_URL and "
            "that Redis is up, or unset REDIS_URL to use an in-process budget",
            account=account,
        )
        self.redis_url = redis_url
        self.reason = reason


EMAG_TEXT_LIMIT = 500  # characters kept of one text eMAG sent: a message, a field name, a field's error
EMAG_TEXTS_LIMIT = 20  # texts kept of a list eMAG sent (messages, field errors); the rest are counted
IP_TEXT_LIMIT = 64  # an IPv6 address is at most 45 characters
MESSAGE_LIMIT = 3000  # a whole error message, eMAG's quoted texts included


def emag_text(value: object, limit: int = EMAG_TEXT_LIMIT) -> str:
    """A text eMAG sent, fit to log, store and return: on one line (control characters, U+2028/U+2029 and
    lone surrogates escaped, as in the log file) and at most `limit` characters, with what was cut counted.

    Use it wherever eMAG's words leave the client: an error message, a product's `sync_issue`."""
    text = escape_controls(str(value))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _more(texts: Sequence[object]) -> str:
    return f"; and {len(texts) - EMAG_TEXTS_LIMIT} more" if len(texts) > EMAG_TEXTS_LIMIT else ""
