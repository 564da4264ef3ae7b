"""The log file of the user's guide (`logs/emag_sync.log`): one line per event, greppable fields, no secrets.

Text lines look like `2026-11-29T10:00:00Z INFO magflow.sync sync started sync_id=... account=main
mode=full`, so `grep "account=main"` and `grep ERROR` work; `LOG_FORMAT=json` writes one JSON object per
line instead, with every `key=value` of the message also as a field. Records of every logger pass through
`RedactingFilter` on the handlers, so a password, an `Authorization` header or a password inside a URL
never reaches the file or the console, whatever library logged it.

A record is always one line: control characters, U+2028/U+2029 and bidi controls in the message and the fields
are escaped (`\\n`, `\\x1b`, `\\u2028`), so a text eMAG sent with a line break and a made-up
`... ERROR magflow.sync ... account=main` can never stand as a line of its own. A traceback's lines follow
their record, each marked with `CONTINUATION` ("  | "), so no line of it can pass for a record. The file is
created 0640 (rotated files keep that), and a settings file other users can read is warned about.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import re
import stat
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magflow.config import ACCOUNTS, Settings, env_file

MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
MASK = "***"
_MARK = "_magflow_handler"
LOG_FILE_MODE = 0o640
# Starts every line of a traceback or stack that follows a record; a record line starts with its timestamp.
CONTINUATION = "  | "
# What ends a line for some reader (grep, a terminal, Python's splitlines, a browser), drives a terminal, or
# reorders text on screen: C0 and C1 controls, DEL, U+2028/U+2029, bidi controls, and lone surrogates (which
# cannot even be written as UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")  # json.dumps does C0
_FIELD = re.compile(r"\b([a-z][a-z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s,;]+)")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(authorization\b[\"']?\s*[:=]\s*[\"']?\s*(?:basic|bearer|token)\s+)[^\s\"',;]+"), r"\1***"),
    (re.compile(r"(?i)\b((?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{8,}"), r"\1***"),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1***@"),
    (re.compile(r"(?i)\b((?:password|passwd|pwd|secret|api_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"), r"\1***"),
    (re.compile(r"\bmgf_[A-Za-z0-9_-]{8,}"), "mgf_***"),
)


def escape_controls(text: str) -> str:
    """`text` with every character `_UNSAFE` names written as an escape (`\\n`, `\\x1b`, `\\u2028`), so it
    stays on one line and shows as it is; other text, backslashes included, is left alone."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class Redactor:
    """Removes the configured passwords (and their Basic-auth form) and secret-shaped text from strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        secrets: list[str] = []
        for account in ACCOUNTS:
            password = settings.password(account).get_secret_value()
            if password:
                secrets.append(password)
                user_pass = f"{settings.username(account)}:{password}".encode()
                secrets.append(base64.b64encode(user_pass).decode())
        return cls(secrets)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """Renders the message once, redacted, so no handler can format the secret back in."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {escape_controls(record.name)} "
        line += escape_controls(record.getMessage())
        extra = [f"{k}={escape_controls(str(v))}" for k, v in _extras(record).items()]
        if extra:
            line += " " + " ".join(extra)
        for block in (record.exc_text, record.stack_info):
            if block:
                line += "".join(f"\n{CONTINUATION}{escape_controls(part)}" for part in block.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "process": record.process,
        }
        for key, value in _FIELD.findall(message):
            entry.setdefault(key, value.strip("\"'"))
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        # json.dumps escapes C0 controls; U+2028/U+2029, C1 and bidi controls it leaves raw, and some readers
        # (Python's splitlines, JavaScript log viewers) break lines at them.
        return _JSON_UNSAFE.sub(_json_escape, json.dumps(entry, default=str, ensure_ascii=False))


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn repeats its message with colours
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """`log.info("...", extra={"account": "main"})` fields, shown as key=value too."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation that several processes (API server, workers, CLI) can share safely.

    Each process appends; rotation happens under an exclusive lock on `<file>.lock`, and a process whose
    file was rotated by another one reopens the new file instead of writing into the renamed old one.
    """

    def __init__(self, filename: Path, max_bytes: int, backup_count: int) -> None:
        self._inode: int | None = None
        self._lock_path = f"{os.path.abspath(filename)}.lock"
        # Not delayed: the file exists from startup, so `tail -f logs/emag_sync.log` works at once.
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")

    def _open(self) -> Any:
        # Created 0640 before it is opened, so not one line is ever readable by other users (the umask can
        # only narrow that); a file an older version left 0644 is narrowed too. Rotation renames, so rotated
        # files keep the mode.
        os.close(os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE))
        stream = super()._open()
        status = os.fstat(stream.fileno())
        self._inode = status.st_ino
        _narrow(stream.fileno(), status.st_mode)
        return stream

    def _reopen_if_rotated(self) -> None:
        if self.stream is None:
            return
        try:
            current = os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            current = None
        if current != self._inode:
            self.stream.close()
            self.stream = self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._reopen_if_rotated()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if not super().shouldRollover(record):
            return False
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reopen_if_rotated()  # another process may have rotated while we waited
                return bool(super().shouldRollover(record)) and self._rotate_locked()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rotate_locked(self) -> bool:
        self.doRollover()
        return False  # rotated here, under the lock; emit() must not rotate again


def _narrow(fd: int, mode: int) -> None:
    """Take away from the open file every permission beyond LOG_FILE_MODE."""
    wanted = stat.S_IMODE(mode) & LOG_FILE_MODE
    if wanted != stat.S_IMODE(mode):
        with contextlib.suppress(OSError):  # another user's file (a shared log): theirs to fix
            os.fchmod(fd, wanted)


def _narrow_rotated(path: Path, backup_count: int) -> None:
    for n in range(1, backup_count + 1):
        try:
            fd = os.open(f"{path}.{n}", os.O_RDONLY)
        except OSError:
            continue
        try:
            _narrow(fd, os.fstat(fd).st_mode)
        finally:
            os.close(fd)


def _warn_about_readable_env_file(console: bool) -> None:
    """A settings file holds the eMAG passwords: say so at startup when other users may read (or write) it."""
    path = env_file()
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if path is not None else 0
    except OSError:
        return
    if not mode & 0o077:
        return
    message = (
        f"{path} can be read by other users (mode {mode:04o}) and holds magflow's settings, eMAG passwords "
        f"included: run `chmod 600 {path}`"
    )
    logging.getLogger("magflow.config").warning(message)
    if not console:  # the CLI logs to the file only; a warning nobody sees would not help
        print(f"magflow: warning: {message}", file=sys.stderr)


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, _MARK, False)]


def reset_logging() -> None:
    """Remove (and close) the handlers `configure_logging` installed."""
    root = logging.getLogger()
    for handler in _handlers_of(root):
        root.removeHandler(handler)
        handler.close()


def configure_logging(
    settings: Settings,
    *,
    console: bool = True,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Path:
    """Log to `settings.log_file` (rotated) and stderr at `settings.log_level`; safe to call again.

    Returns the log file's path. A second call replaces the handlers of the first (new settings apply),
    so lines are never written twice.
    """
    reset_logging()
    path = settings.log_file.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    _narrow_rotated(path, backup_count)
    formatter: logging.Formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
    redacting = RedactingFilter(Redactor.from_settings(settings))
    handlers: list[logging.Handler] = [SharedRotatingFileHandler(path, max_bytes, backup_count)]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    level = logging.getLevelName(settings.log_level)
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redacting)
        handler.setLevel(level)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    # DEBUG is for magflow's own detail; other libraries stay at INFO so the file stays readable.
    root.setLevel(max(level, logging.INFO))
    logging.getLogger("magflow").setLevel(level)
    _warn_about_readable_env_file(console)
    return path
