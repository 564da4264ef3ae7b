"""The embedded default: a PostgreSQL server from a pip package, private to the user who runs magflow.

Only the package's binaries are used; starting the server is done here, because the package's own start
opens the filesystem (it chmods every parent of the data and install directories, and moves the socket of
a long path into a 0777 directory with `trust` auth). What magflow keeps under MAGFLOW_DATA_DIR (0700):

    pgdata/         the cluster (0700, the server's user); its log is pgdata/log
    run/            the server's Unix socket (0700, the server's user); there is no TCP listener
    pgpass          the password of magflow's role, in libpq's passfile format (0600)
    embedded.lock   serialises starts between magflow processes

No mode outside MAGFLOW_DATA_DIR is changed; see embedded_os for how a root-run magflow manages that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from magflow.db import embedded_sql as sql
from magflow.db.embedded_os import (
    EmbeddedDatabaseError,
    ServerUser,
    install_bin,
    private_dir,
    read_private_file,
    run_as_server,
    server_bin,
    server_env,
    server_user,
    write_private_file,
)

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = sql.EMBEDDED_DATABASE
SOCKET_PATH_MAX = 107  # a Unix socket path fits in 108 bytes, the final NUL included
_SOCKET_NAME = f".s.PGSQL.{sql.PORT}"

__all__ = [
    "EMBEDDED_DATABASE",
    "EmbeddedDatabaseError",
    "embedded_psql",
    "embedded_url",
    "start_embedded",
    "stop_embedded",
]


@dataclass(frozen=True)
class _Layout:
    data_dir: Path

    @classmethod
    def of(cls, data_dir: Path) -> _Layout:
        return cls(data_dir.expanduser().resolve())

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def passfile(self) -> Path:
        return self.data_dir / "pgpass"

    @property
    def socket(self) -> Path:
        return self.run_dir / _SOCKET_NAME

    @property
    def server_log(self) -> Path:
        return self.pgdata / "log"


def start_embedded(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and make sure magflow's role and database exist.

    The server keeps running after this process exits, like a local daemon, so the API server, workers and
    the CLI share it; `magflow db stop` stops it. Returns a libpq URL with no secret in it: the socket
    directory and the passfile that holds the password (both libpq and asyncpg read it).
    """
    layout = _Layout.of(data_dir)
    _check_path(layout)
    _prepare_data_dir(layout.data_dir)
    user = server_user()
    bin_dir = server_bin(user)
    with _locked(layout.data_dir / "embedded.lock"):
        password = _ensure_password(layout.passfile)
        config_changed = _ensure_cluster(layout, user, bin_dir)
        _ensure_running(layout, user, bin_dir, reload=config_changed)
        _provision(layout, bin_dir, password)
    return embedded_url(layout.data_dir)


def embedded_url(data_dir: Path) -> str:
    layout = _Layout.of(data_dir)
    return (
        f"postgresql://{sql.EMBEDDED_ROLE}@/{sql.EMBEDDED_DATABASE}"
        f"?host={quote(str(layout.run_dir))}&passfile={quote(str(layout.passfile))}"
    )


def embedded_psql() -> str:
    """The psql binary shipped with the embedded server (for machines without a PostgreSQL client)."""
    return str(install_bin() / "psql")


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    layout = _Layout.of(data_dir)
    if not layout.pgdata.is_dir() or _running_socket_dir(layout.pgdata) is None:
        return False
    user = server_user()
    with _locked(layout.data_dir / "embedded.lock"):
        _pg_ctl(layout, user, server_bin(user), ["-w", "-m", "fast", "stop"])
    return True


def _check_path(layout: _Layout) -> None:
    length = len(os.fsencode(layout.socket))
    if length > SOCKET_PATH_MAX:
        limit = SOCKET_PATH_MAX - (length - len(os.fsencode(layout.data_dir)))
        raise EmbeddedDatabaseError(
            f"MAGFLOW_DATA_DIR={layout.data_dir} is too long for the embedded PostgreSQL's socket "
            f"({len(os.fsencode(layout.data_dir))} bytes, at most {limit} fit): "
            "choose a shorter directory, or set DATABASE_URL to a PostgreSQL server"
        )
    if any(char in str(layout.data_dir) for char in "\"'\\") or not str(layout.data_dir).isprintable():
        raise EmbeddedDatabaseError(
            f"MAGFLOW_DATA_DIR={layout.data_dir!r} holds a quote, a backslash or a control character, which "
            "the embedded PostgreSQL's settings cannot carry: choose another directory"
        )


def _prepare_data_dir(path: Path) -> None:
    """MAGFLOW_DATA_DIR is magflow's own, 0700; a shared directory is refused rather than locked down."""
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise EmbeddedDatabaseError(
            f"MAGFLOW_DATA_DIR={path} belongs to another user (uid {info.st_uid}): "
            "choose a directory of your own, or set DATABASE_URL to a PostgreSQL server"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 == 0:
        return
    if info.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
        raise EmbeddedDatabaseError(
            f"MAGFLOW_DATA_DIR={path} is shared with other users (mode {mode:o}): choose a new directory "
            "of magflow's own (magflow creates it with mode 700)"
        )
    if existed and any(path.iterdir()) and not (path / "pgdata").is_dir():
        raise EmbeddedDatabaseError(
            f"MAGFLOW_DATA_DIR={path} is open to other users (mode {mode:o}) and holds files that are not "
            f"magflow's: choose a new directory (magflow creates it with mode 700), or run `chmod 700 {path}`"
        )
    os.chmod(path, 0o700)
    if existed:
        log.warning("MAGFLOW_DATA_DIR %s was open to other users (mode %o): it is now 700", path, mode)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_password(passfile: Path) -> str:
    text = read_private_file(passfile)
    password = sql.password_from_passfile(text) if text else None
    if password is None:
        password = sql.new_password()
        write_private_file(passfile, sql.passfile_text(password))
    # libpq and asyncpg both ignore a passfile that others can read; and others must not read it.
    os.chmod(passfile, 0o600)
    return password


def _ensure_cluster(layout: _Layout, user: ServerUser, bin_dir: Path) -> bool:
    """The cluster exists, belongs to the server's user, and carries our access rules; True if they changed."""
    if not (layout.pgdata / "PG_VERSION").exists():
        private_dir(layout.pgdata, user)
        command = [str(bin_dir / "initdb"), "-D", str(layout.pgdata), "-U", sql.SUPERUSER, "--encoding=UTF8"]
        # Only our own pg_hba.conf below decides who connects; these just keep initdb's from being `trust`.
        _run(layout, user, [*command, "--auth-local=peer", "--auth-host=reject"], "could not create its cluster")
        log.info("created the embedded PostgreSQL cluster in %s", layout.pgdata)
    elif layout.pgdata.stat().st_uid != user.uid:
        raise EmbeddedDatabaseError(
            f"{layout.pgdata} belongs to uid {layout.pgdata.stat().st_uid}, not to {user.name} who runs the "
            "embedded PostgreSQL: move it aside to start a new one, or set DATABASE_URL to a PostgreSQL server"
        )
    private_dir(layout.pgdata, user)
    private_dir(layout.run_dir, user)
    conf = read_private_file(layout.pgdata / "postgresql.conf") or ""
    changes = [
        write_private_file(layout.pgdata / "pg_hba.conf", sql.hba_conf(), user),
        write_private_file(layout.pgdata / "pg_ident.conf", sql.ident_conf(_client_os_user()), user),
        write_private_file(layout.pgdata / sql.CONF_FILE, sql.server_conf(layout.run_dir), user),
        write_private_file(layout.pgdata / "postgresql.conf", sql.with_include(conf), user),
    ]
    return any(changes)


def _client_os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _ensure_running(layout: _Layout, user: ServerUser, bin_dir: Path, *, reload: bool) -> None:
    socket_dir = _running_socket_dir(layout.pgdata)
    if socket_dir == layout.run_dir and layout.socket.exists():
        if reload:
            _pg_ctl(layout, user, bin_dir, ["reload"])
        return
    if socket_dir is not None and socket_dir != layout.run_dir:
        # A server started by an older magflow (socket elsewhere, `trust` auth): restart it under our rules.
        log.warning("restarting the embedded PostgreSQL server in %s with private access", layout.pgdata)
        _pg_ctl(layout, user, bin_dir, ["-w", "-m", "fast", "stop"])
    _pg_ctl(layout, user, bin_dir, ["-w", "-t", "60", "-l", str(layout.server_log), "start"])
    log.info("started the embedded PostgreSQL server in %s", layout.pgdata)


def _running_socket_dir(pgdata: Path) -> Path | None:
    """The socket directory of the server running on `pgdata`, from its postmaster.pid; None if none runs."""
    lines = (read_private_file(pgdata / "postmaster.pid") or "").splitlines()
    if len(lines) < 5 or not lines[0].strip().isdigit():
        return None
    try:
        os.kill(int(lines[0]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    return Path(lines[4].strip()) if lines[4].strip() else Path()


def _pg_ctl(layout: _Layout, user: ServerUser, bin_dir: Path, args: list[str]) -> None:
    action = args[-1]
    _run(layout, user, [str(bin_dir / "pg_ctl"), "-D", str(layout.pgdata), *args], f"could not {action}")


def _run(layout: _Layout, user: ServerUser, argv: list[str], what: str) -> None:
    try:
        run_as_server(user, argv)
    except subprocess.CalledProcessError as exc:
        reason = _first_line(exc.stderr) or f"exit status {exc.returncode}"
        raise _server_error(layout, what, reason) from exc
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise _server_error(layout, what, _first_line(str(exc))) from exc


def _provision(layout: _Layout, bin_dir: Path, password: str) -> None:
    """As the superuser (peer: this process's own OS user), give magflow's role its password and database."""
    env = server_env() | {
        "PGHOST": str(layout.run_dir),
        "PGPORT": str(sql.PORT),
        "PGUSER": sql.SUPERUSER,
        "PGDATABASE": "postgres",
    }
    # The script goes through stdin: the password's verifier never shows in a process list.
    script = sql.provisioning_script(sql.scram_verifier(password))
    try:
        subprocess.run(
            [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"],
            input=script,
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise _server_error(layout, "could not set up magflow's role", _first_line(exc.stderr)) from exc
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise _server_error(layout, "could not set up magflow's role", _first_line(str(exc))) from exc


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _server_error(layout: _Layout, what: str, reason: str) -> EmbeddedDatabaseError:
    return EmbeddedDatabaseError(
        f"the embedded PostgreSQL server {what} ({reason}): see {layout.server_log}, "
        "or set DATABASE_URL to a PostgreSQL server"
    )
