"""`magflow test-connection --detect`: find the body style this eMAG account honours.

Each style (json, json-data, form, in that order) is tried with the count, two one-offer pages and a filter by
id; the first under which paging and filters are honoured wins. Credentials, IP and network failures stop the
search at once: no style fixes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from magflow.emag.client import EmagClient
from magflow.emag.config import REQUEST_FORMATS, AccountConfig, RequestFormat
from magflow.emag.connection import ConnectionVerdict, failure_verdict, probe_filters, probe_paging
from magflow.emag.errors import EmagApiError, EmagError, EmagRequestError, EmagTransientError
from magflow.emag.ratelimit import RateBudget


@dataclass(frozen=True, slots=True)
class StyleTrial:
    request_format: RequestFormat
    works: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Detection:
    account: str
    found: RequestFormat | None
    trials: list[StyleTrial]
    message: str
    product_count: int | None = None
    stopped: ConnectionVerdict | None = None  # a failure no body style can fix

    def evidence(self) -> dict[str, Any]:
        """How the style was found, as recorded beside it in emag_account_state."""
        return {
            "tried": [{"request_format": t.request_format, "works": t.works, "detail": t.detail} for t in self.trials],
            "product_count": self.product_count,
        }


async def detect_request_format(config: AccountConfig, budget: RateBudget) -> Detection:
    account = config.account
    trials: list[StyleTrial] = []
    count: int | None = None
    for style in REQUEST_FORMATS:
        candidate = dataclasses.replace(config, request_format=style, request_format_source="explicit")
        async with EmagClient(candidate, budget=budget) as client:
            try:
                probe = await probe_paging(client)
                count = probe.count.items
                filter_problem = await probe_filters(client, probe)
            except (EmagRequestError, EmagApiError) as exc:  # this style refused: the next may be read
                trials.append(StyleTrial(style, False, str(exc)))
                continue
            except EmagTransientError as exc:
                if exc.network:
                    return _stopped(account, trials, failure_verdict(account, exc))
                trials.append(StyleTrial(style, False, str(exc)))
                continue
            except EmagError as exc:  # credentials, IP, rate limit
                return _stopped(account, trials, failure_verdict(account, exc))
        if probe.problem is not None:
            trials.append(StyleTrial(style, False, probe.problem))
            continue
        if not probe.proven:
            trials.append(StyleTrial(style, False, "the account has no offers, so paging cannot be shown"))
            message = (
                f"account {account} has no offers, so no request format can be proven: keep the default and run "
                "`magflow test-connection --detect` again once it has two or more offers"
            )
            return Detection(account, None, trials, message, count)
        if filter_problem is not None:
            trials.append(StyleTrial(style, False, filter_problem))
            continue
        two = count is not None and count >= 2
        detail = "paging and filters honoured" if two else "paging honoured (one offer: filters unproven)"
        trials.append(StyleTrial(style, True, detail))
        message = f"account {account}: eMAG honours request format {style} ({detail})"
        return Detection(account, style, trials, message, count)
    tried = "; ".join(f"{t.request_format}: {t.detail}" for t in trials)
    prefix = config.env_prefix
    message = (
        f"no request format made eMAG honour paging and filters for account {account} ({tried}): check "
        f"{prefix}_BASE_URL, and send eMAG support the requests logged with {prefix}_DETAILED_LOG=true"
    )
    return Detection(account, None, trials, message, count)


def _stopped(account: str, trials: list[StyleTrial], verdict: ConnectionVerdict) -> Detection:
    return Detection(account, None, trials, verdict.message, stopped=verdict)
