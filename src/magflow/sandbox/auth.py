"""HTTP Basic logins of the two sandbox accounts. The scheme name is case-insensitive (RFC 7235), so `basic` and
`BASIC` are accepted as eMAG's servers accept them."""

from __future__ import annotations

import base64
import binascii

from magflow.sandbox.state import SANDBOX_ACCOUNTS

ANONYMOUS = "anonymous"  # whose budget a request naming no known login uses when limits come before auth
_HEADERS = {
    b"Basic " + base64.b64encode(f"{user}:{password}".encode()): account
    for account, (user, password) in SANDBOX_ACCOUNTS.items()
}
_LOGINS = {(user, password): account for account, (user, password) in SANDBOX_ACCOUNTS.items()}
_USERS = {user: account for account, (user, _) in SANDBOX_ACCOUNTS.items()}


def login(header: bytes) -> tuple[str | None, str]:
    """(the account the credentials open or None, the account the username names or ANONYMOUS)."""
    account = _HEADERS.get(header)  # the usual header, byte for byte: no decoding on the fast path
    if account is not None:
        return account, account
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None, ANONYMOUS
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None, ANONYMOUS
    return _LOGINS.get((user, password)), _USERS.get(user, ANONYMOUS)
