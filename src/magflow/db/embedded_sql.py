"""What the embedded server is told: who may connect and how, and the role and database magflow uses.

Access, in full: no TCP listener at all; a Unix socket in a 0700 directory; the superuser only for the
operating-system user that runs magflow (`peer`, checked by the kernel, no password to keep); magflow's
own role, which is no superuser and owns only the `magflow` database, with a generated password (scram).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

EMBEDDED_DATABASE = "magflow"
EMBEDDED_ROLE = "magflow"
SUPERUSER = "postgres"
PORT = 5432
CONF_FILE = "magflow.conf"
_INCLUDE = f"include '{CONF_FILE}'"
_SCRAM_ITERATIONS = 4096


def hba_conf() -> str:
    return (
        "# Written by magflow each time it starts the embedded server: edits here are replaced.\n"
        "# No `host` line: nothing is accepted over TCP, even if listen_addresses were changed.\n"
        "# TYPE  DATABASE  USER      METHOD\n"
        f"local   all       {SUPERUSER}  peer map=magflow\n"
        f"local   {EMBEDDED_DATABASE}   {EMBEDDED_ROLE}   scram-sha-256\n"
    )


def ident_conf(os_user: str) -> str:
    return (
        "# Written by magflow: only the operating-system user running magflow may be the superuser.\n"
        f'magflow  "{os_user}"  {SUPERUSER}\n'
    )


def server_conf(socket_dir: Path) -> str:
    # The directory list is a quoted string of double-quoted entries (a path may hold commas or spaces).
    directories = f'"{socket_dir}"'.replace("'", "''")
    return (
        "# Written by magflow each time it starts the embedded server: edits here are replaced.\n"
        "listen_addresses = ''\n"
        f"port = {PORT}\n"
        f"unix_socket_directories = '{directories}'\n"
        "unix_socket_permissions = 0700\n"
        "password_encryption = 'scram-sha-256'\n"
    )


def with_include(postgresql_conf: str) -> str:
    """postgresql.conf ending with our include, so our settings win over anything earlier in the file."""
    lines = [line for line in postgresql_conf.splitlines() if line.strip() != _INCLUDE]
    return "\n".join([*lines, _INCLUDE]) + "\n"


def new_password() -> str:
    return secrets.token_urlsafe(32)


def passfile_text(password: str) -> str:
    return f"*:*:{EMBEDDED_DATABASE}:{EMBEDDED_ROLE}:{password}\n"


def password_from_passfile(text: str) -> str | None:
    for line in text.splitlines():
        fields = line.split(":", 4)
        if len(fields) == 5 and fields[2:4] == [EMBEDDED_DATABASE, EMBEDDED_ROLE] and fields[4]:
            return fields[4]
    return None


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores, computed here so the password never reaches the server,
    its logs or a statement (RFC 5802/7677; the password is ASCII, so SASLprep leaves it unchanged)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def provisioning_script(verifier: str) -> str:
    """psql input, run as the superuser: the role and database exist, are magflow's, and nothing else is."""
    db, role = EMBEDDED_DATABASE, EMBEDDED_ROLE
    return f"""
SELECT 'CREATE ROLE {role}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') \\gexec
ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{verifier}';
SELECT 'CREATE DATABASE {db} OWNER {role}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}') \\gexec
ALTER DATABASE {db} OWNER TO {role};
REVOKE ALL ON DATABASE {db} FROM PUBLIC;
\\connect {db}
{_ADOPT_OBJECTS}
"""


# A database made by an older magflow belongs to the superuser: hand its objects to magflow's role (tables
# first: their identity sequences follow them). Objects of extensions stay where they are.
_ADOPT_OBJECTS = f"""
DO $adopt$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> '{EMBEDDED_ROLE}'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {EMBEDDED_ROLE}',
            CASE item.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, item.name);
    END LOOP;
    FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND c.relkind = 'S' AND c.relowner <> '{EMBEDDED_ROLE}'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype IN ('a', 'i', 'e'))
    LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNER TO {EMBEDDED_ROLE}', item.name);
    END LOOP;
    FOR item IN
        SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND t.typtype IN ('e', 'd', 'r', 'c') AND t.typowner <> '{EMBEDDED_ROLE}'::regrole
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                          AND d.deptype IN ('e', 'i'))
    LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO {EMBEDDED_ROLE}', item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND p.proowner <> '{EMBEDDED_ROLE}'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {EMBEDDED_ROLE}', item.name);
    END LOOP;
    FOR item IN
        SELECT n.nspname AS name FROM pg_namespace n
        WHERE n.nspname NOT IN ('information_schema', 'public') AND n.nspname NOT LIKE 'pg\\_%'
          AND n.nspowner <> '{EMBEDDED_ROLE}'::regrole
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {EMBEDDED_ROLE}', item.name);
    END LOOP;
END
$adopt$;
"""
