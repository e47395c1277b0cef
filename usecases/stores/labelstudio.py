"""Label Studio: the embedded server's lifecycle and a thin adapter on ``label-studio-sdk``.

Locally the project runs Label Studio itself: its own virtual environment (its dependencies and
Determined's cannot share one: ``requests>=2.33`` against ``<2.32``), bound to 127.0.0.1, its
database in the project's PostgreSQL, its files under ``CDL_HOME/label-studio``, an admin user and
API token generated on first start, telemetry and version checks off. On a cluster the same
adapter drives the Label Studio release: ``CDL_LABEL_STUDIO_URL`` and ``CDL_LABEL_STUDIO_TOKEN``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from usecases.errors import CDLError
from usecases.state import State, alive, atomic_write

VERSION = "1.23.2"  # the server scripts/setup.sh installs; the adapter is tested against it
DEFAULT_PORT = 8089
ADMIN = "admin@cdl.local"
DB_NAME = DB_ROLE = "labelstudio"
CREDENTIALS = "label-studio.json"  # under CDL_HOME/secrets, owner-only
_START_TIMEOUT = 300.0  # the first start applies Django's migrations: ~30 s on 2 cores
IMPORT_BATCH = 2000  # tasks per import request
_EXPORT_IDS = 400  # task ids per export request
T = TypeVar("T")


@dataclass(frozen=True)
class Studio:
    """Where a Label Studio server answers and the API token to use there."""

    url: str
    token: str
    credentials: Path | None = None  # the file a person logs in with (embedded server only)
    media: Path | None = None  # the folder the embedded server serves its tasks' files from
    exports: Path | None = None  # where the embedded server leaves a copy of each export


def media_url(folder: Path, name: str) -> str:
    """The URL under which the embedded server serves ``folder/name`` to a task (``folder`` in
    its media folder: Label Studio's local-files serving)."""
    return f"/data/local-files/?d={quote(f'{folder.name}/{name}')}"


def executable() -> Path:
    """The ``label-studio`` command: ``CDL_LABEL_STUDIO_BIN``, beside this Python, or on PATH."""
    configured = os.environ.get("CDL_LABEL_STUDIO_BIN")
    candidates = [Path(configured)] if configured else [Path(sys.executable).parent
                                                         / "label-studio"]
    found = shutil.which("label-studio")
    if not configured and found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CDLError(
        f"Label Studio is not installed (looked for {', '.join(map(str, candidates))})",
        "run scripts/setup.sh (it installs Label Studio in .venv-labelstudio), set "
        "CDL_LABEL_STUDIO_BIN, or pass --no-label-studio",
    )


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        # as the server binds: connections a killed server left in TIME_WAIT do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class EmbeddedLabelStudio:
    """A Label Studio server owned by the project, its files in ``CDL_HOME/label-studio``."""

    state: State
    conninfo: str  # the project's PostgreSQL, as a role allowed to create roles and databases
    port: int = DEFAULT_PORT

    @property
    def root(self) -> Path:
        return self.state.dir("label-studio", private=True)

    @property
    def media(self) -> Path:
        """Files the server serves to its tasks (Fashion-MNIST's images), one folder per use
        case."""
        path = self.root / "media"
        path.mkdir(exist_ok=True)
        return path

    @property
    def log_file(self) -> Path:
        return self.state.logs / "label-studio.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "server.json"

    @property
    def credentials_file(self) -> Path:
        return self.state.secrets / CREDENTIALS

    def credentials(self) -> dict[str, str]:
        """The admin's login and API token, generated on first use, never a default."""
        path = self.credentials_file
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({
                    "username": ADMIN,
                    "password": self.state.secret("label-studio-password"),
                    # Label Studio keeps tokens in a 40-character column
                    "token": self.state.secret("label-studio-token", nbytes=30)[:40],
                }, handle, indent=1)
        return dict(json.loads(path.read_text()))

    def _database(self) -> dict[str, str]:
        """A login role and database of its own in the project's PostgreSQL (created once)."""
        password = self.state.secret("label-studio-db-password")
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (DB_ROLE,)).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(DB_ROLE), sql.Literal(password)))
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    (DB_NAME,)).fetchone():
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(DB_NAME), sql.Identifier(DB_ROLE)))
        except psycopg.Error as exc:
            raise CDLError(f"cannot prepare Label Studio's database: {exc}".strip(),
                           "the embedded Label Studio needs a PostgreSQL role that may create "
                           "roles and databases; set CDL_LABEL_STUDIO_URL to use a running "
                           "Label Studio instead") from None
        params = conninfo_to_dict(self.conninfo)
        return {
            "DJANGO_DB": "default",
            "POSTGRE_HOST": str(params.get("host", "localhost")),
            "POSTGRE_PORT": str(params.get("port", 5432)),
            "POSTGRE_NAME": DB_NAME,
            "POSTGRE_USER": DB_ROLE,
            "POSTGRE_PASSWORD": password,
        }

    def _env(self) -> dict[str, str]:
        login = self.credentials()
        return {
            **os.environ,
            **self._database(),
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.root),
            "LABEL_STUDIO_USERNAME": login["username"],
            "LABEL_STUDIO_PASSWORD": login["password"],
            "LABEL_STUDIO_USER_TOKEN": login["token"],
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # images reach Label Studio as files it serves from media/, not as data URLs in
            # its database
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.media),
            # no outside connection: no version check, no analytics, no error reporting
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }

    def running(self) -> Studio | None:
        """The server this state directory started, if it still answers."""
        if not self.pid_file.exists():
            return None
        recorded = json.loads(self.pid_file.read_text())
        url = f"http://127.0.0.1:{recorded['port']}"
        running = alive(int(recorded["pid"]))
        if running and healthy(url):
            return Studio(url, self.credentials()["token"], self.credentials_file, self.media,
                          self.root / "export")
        if not running:
            self.pid_file.unlink(missing_ok=True)
        return None

    def start(self) -> Studio:
        found = self.running()
        if found:
            return found
        if not _port_free(self.port):
            raise CDLError(f"port {self.port} on 127.0.0.1 is in use; Label Studio cannot start",
                           "pass --label-studio-port with a free port, or stop what listens there")
        command = [str(executable()), "start", "--no-browser", "--internal-host", "127.0.0.1",
                   "--port", str(self.port), "--enable-legacy-api-token"]
        env = self._env()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(command, env=env, cwd=self.root, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        atomic_write(self.pid_file, json.dumps({"pid": process.pid, "port": self.port}))
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + _START_TIMEOUT
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise CDLError(f"Label Studio did not start: {_last_line(self.log_file)}",
                               f"read {self.log_file}; delete CDL_HOME/label-studio and its "
                               "database to start empty, or pass --no-label-studio")
            time.sleep(0.5)
        return Studio(url, env["LABEL_STUDIO_USER_TOKEN"], self.credentials_file, self.media,
                      self.root / "export")

    def stop(self) -> None:
        if not self.pid_file.exists():
            return
        pid = int(json.loads(self.pid_file.read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self.pid_file.unlink(missing_ok=True)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


@contextlib.contextmanager
def open_label_studio(state: State, conninfo: str,
                      port: int = DEFAULT_PORT) -> Iterator[Studio]:
    """The Label Studio to label with: ``CDL_LABEL_STUDIO_URL`` + ``CDL_LABEL_STUDIO_TOKEN`` if
    set, else the embedded server (started here and stopped on exit; one already running, as
    after ``cdl studio start``, is used and left running)."""
    url = os.environ.get("CDL_LABEL_STUDIO_URL")
    if url:
        token = os.environ.get("CDL_LABEL_STUDIO_TOKEN")
        if not token:
            raise CDLError("CDL_LABEL_STUDIO_URL is set but CDL_LABEL_STUDIO_TOKEN is not",
                           "set CDL_LABEL_STUDIO_TOKEN to an API token of that Label Studio")
        yield Studio(url.rstrip("/"), token)
        return
    server = EmbeddedLabelStudio(state, conninfo, port)
    found = server.running()
    studio = found or server.start()
    try:
        yield studio
    finally:
        if not found:
            server.stop()


class LabelStudioClient:
    """The calls the Labeling step makes, with one-line errors instead of SDK exceptions."""

    def __init__(self, studio: Studio, timeout: float = 900.0) -> None:
        # imported here: the SDK takes a second to import, and the CLI reads this module's
        # defaults on every command
        from label_studio_sdk import LabelStudio

        self.studio = studio
        # exports of tens of thousands of tasks take minutes
        self._sdk = LabelStudio(base_url=studio.url, api_key=studio.token, timeout=timeout)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        from label_studio_sdk.core.api_error import ApiError

        where = self.studio.url
        try:
            return call()
        except httpx.HTTPError as exc:
            raise CDLError(f"cannot reach Label Studio at {where} to {what} ({exc})",
                           "start it (cdl studio start), or correct CDL_LABEL_STUDIO_URL; the "
                           "labels already stored are unchanged") from None
        except ApiError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = body.get("detail") or str(exc.body)[:200]
            if body.get("validation_errors"):
                detail = f"{detail}: {json.dumps(body['validation_errors'])[:300]}"
            if exc.status_code in (401, 403):
                raise CDLError(
                    f"Label Studio at {where} refused the API token ({exc.status_code}: "
                    f"{detail})",
                    "use the token in CDL_HOME/secrets/label-studio.json, or set "
                    "CDL_LABEL_STUDIO_TOKEN to a valid token; the labels already stored are "
                    "unchanged") from None
            raise CDLError(f"Label Studio at {where} could not {what} ({exc.status_code}: "
                           f"{detail})", "see the Label Studio server's log") from None

    def project(self, title: str, label_config: str) -> int:
        """The id of the project with this title, created with the config if missing."""
        projects: list[Any] = self._call("list projects",
                                         lambda: list(self._sdk.projects.list()))
        for project in projects:
            if project.title == title and project.id is not None:
                return int(project.id)
        created = self._call("create a project", lambda: self._sdk.projects.create(
            title=title, label_config=label_config))
        assert created.id is not None
        return int(created.id)

    def items(self, project: int) -> set[tuple[str, str]]:
        """(item id, content hash) of the project's tasks, kept in each task's ``data``."""
        tasks: list[Any] = self._call("list tasks", lambda: list(self._sdk.tasks.list(
            project=project, include="id,data", page_size=5000)))
        return {(str(task.data.get("item_id")), str(task.data.get("content")))
                for task in tasks if task.data}

    def task_count(self, project: int) -> int:
        found = self._call("read a project", lambda: self._sdk.projects.get(id=project))
        return int(found.task_number or 0)

    def media_storage(self, project: int, path: Path) -> None:
        """Let the project's tasks show files under ``path`` (Label Studio serves a local file
        only to projects with a local storage over its folder); created once, never synced:
        the tasks are imported with their URLs."""
        existing: list[Any] = self._call("list local storages", lambda: list(
            self._sdk.import_storage.local.list(project=project)))
        if not any(storage.path == str(path) for storage in existing):
            self._call("add a local storage", lambda: self._sdk.import_storage.local.create(
                project=project, path=str(path), title="CDL media", use_blob_urls=True))

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> int:
        """One batch (Label Studio writes a batch in one transaction)."""
        if tasks:
            self._call("import tasks", lambda: self._sdk.projects.import_tasks(
                id=project, request=tasks, return_task_ids=False))  # type: ignore[arg-type]
        return len(tasks)

    def convert_predictions(self, project: int) -> None:
        """Turn pre-annotations into annotations on tasks nobody has annotated yet.

        The filter matters: Label Studio would also convert a newer prediction on a task a
        person already labeled, adding an annotation beside theirs."""
        unlabeled = {"conjunction": "and", "items": [{
            "filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number",
            "value": 0}]}
        self._call("convert predictions to annotations", lambda: self._sdk.actions.create(
            id="predictions_to_annotations", project=project, filters=unlabeled,
            selected_items={"all": True, "excluded": []}))

    def changed(self, project: int, since: datetime | None) -> list[dict[str, Any]]:
        """Tasks someone touched (an annotation added, converted, edited, skipped or deleted
        sets a task's ``updated_by`` and bumps its ``updated_at``; an import sets neither),
        after ``since`` when given; each with its data and annotations, as Label Studio's JSON
        export writes them."""
        items: list[dict[str, Any]] = [{"filter": "filter:tasks:updated_by",
                                        "operator": "empty", "type": "List", "value": False}]
        if since is not None:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater",
                          "type": "Datetime",
                          "value": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
        query = json.dumps({"filters": {"conjunction": "and", "items": items}})
        found: list[Any] = self._call("list changed tasks", lambda: list(self._sdk.tasks.list(
            project=project, fields="task_only", include="id", page_size=5000, query=query)))
        ids = [int(task.id) for task in found]
        tasks: list[dict[str, Any]] = []
        # The export serialises tasks 5-10 times faster than the task list does with
        # annotations; it takes the ids in the query string, so a few hundred at a time.
        for start in range(0, len(ids), _EXPORT_IDS):
            tasks.extend(self._export(project, ids[start:start + _EXPORT_IDS]))
        if self.studio.exports is not None:
            # Each synchronous export leaves a copy on the server's disk, with no export record
            # the API could delete.
            for copy in self.studio.exports.glob(f"project-{project}-at-*.json"):
                copy.unlink(missing_ok=True)
        return tasks

    def _export(self, project: int, ids: list[int]) -> list[dict[str, Any]]:
        chosen = {"additional_query_parameters": {"ids[]": [str(i) for i in ids]}}
        data = self._call("export annotations", lambda: b"".join(
            self._sdk.projects.exports.download_sync(
                id=project, export_type="JSON", download_all_tasks=True,
                request_options=chosen)))  # type: ignore[arg-type]
        tasks: list[dict[str, Any]] = json.loads(data)
        return tasks

    def users(self) -> dict[int, str]:
        """User id -> e-mail, to name who labeled what."""
        found = self._call("list users", lambda: list(self._sdk.users.list()))
        return {int(user.id): str(user.email or user.username) for user in found
                if user.id is not None}
