"""Real parts for the service tests: a PostgreSQL server on loopback (run as a non-root user), `grade serve`
processes, tokens made by `grade token add`, and a small HTTP client."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICE_ENV = {"GRADE_SERVICE_LEASE_S": "4", "GRADE_SERVICE_HEARTBEAT_S": "1", "GRADE_SERVICE_WEBHOOK_BACKOFF_S": "0.5",
               "GRADE_WEBHOOK_SECRET": "test-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def processes() -> dict[int, tuple[int, bytes]]:
    """Every process now: pid -> (its parent's pid, its command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def descendants(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process below `pid`."""
    table = processes()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, table[child][1]))
        todo.extend(children.get(child, []))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- PostgreSQL

def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1, owned by an unprivileged user when we are root."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup installs it: apt-get install postgresql)")
        self.bin = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="grade-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "log"
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.root, self.user)
            os.chmod(self.root, 0o700)
        self._as_user([str(self.bin / "initdb"), "-D", str(self.data), "-U", "grader", "--auth=trust", "-E", "UTF8",
                       "--no-sync"])
        self.start()

    def _as_user(self, command: list[str]) -> None:
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=200"
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                       "start"])

    def stop(self) -> None:
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://grader@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=grader dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the service

def token(db_url: str, role: str, student: str | None = None) -> str:
    """A token made by `grade token add` (run in-process through click's runner)."""
    from click.testing import CliRunner

    from grader.cli.main import main

    arguments = ["token", "add", "--role", role, "--db", db_url] + (["--student", student] if student else [])
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, method: str = "GET", token: str | None = None, data: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
                 f"Content-Type: text/x-python\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Server:
    """`grade serve` in its own process, on a free loopback port."""

    def __init__(self, db_url: str, jobs: int = 1, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.db_url = db_url
        self.jobs = jobs
        self.env = {**os.environ, **SERVICE_ENV, **(env or {})}
        self.cwd = cwd or ROOT
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="grade-serve-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, wait: bool = True) -> Server:
        command = [sys.executable, "-m", "grader.cli", "serve", "--port", str(self.port), "--db", self.db_url,
                   "--jobs", str(self.jobs)]
        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=self.log, stderr=self.log)
        if wait:
            wait_for(self.healthy, 120, f"the service on {self.url} to be healthy ({self.log.name})", 0.5)
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"grade serve exited {self.process.returncode}: {self.output()[-3000:]}")
        try:
            return call(self.url + "/healthz", timeout=5).status == 200
        except OSError:
            return False

    def output(self) -> str:
        return Path(self.log.name).read_text("utf-8", "replace")

    def kill9(self) -> None:
        """SIGKILL the service process (its grading runners are told by the kernel and stop; their zygotes
        lose their pipe and exit on their own)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def zygotes(self) -> list[int]:
        """The service's worker processes (grader.sandbox.zygote), children of it or of its grading runners
        (not the zygotes' own forked children, which run the submissions)."""
        assert self.process is not None
        parents = {self.process.pid, *self.runners()}
        table = processes()
        return [pid for pid, (parent, cmdline) in table.items()
                if parent in parents and b"grader.sandbox.zygote" in cmdline]

    def busy_zygotes(self) -> list[int]:
        """The zygotes running a job now: with a child other than their spare (which waits for the next job,
        named grader-spare)."""
        from grader.sandbox.proctree import name_of
        from grader.sandbox.zygote import SPARE_NAME

        zygotes = set(self.zygotes())
        return sorted({parent for pid, (parent, _) in processes().items()
                       if parent in zygotes and name_of(pid) != SPARE_NAME})

    def runners(self) -> list[int]:
        """The service's grading runner processes (grader.service.runners)."""
        assert self.process is not None
        return [pid for pid, cmdline in descendants(self.process.pid) if b"grader.service.runners" in cmdline]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    # ---- the API, as a client sees it
    def submit(self, token: str, exercise: str, content: bytes, student: str | None = None,
               file_name: str = "ex03.py", callback_url: str | None = None, key: str | None = None) -> Answer:
        fields = {"exercise": exercise}
        if student:
            fields["student"] = student
        if callback_url:
            fields["callback_url"] = callback_url
        body, content_type = multipart(fields, file_name, content)
        headers = {"Content-Type": content_type}
        if key:
            headers["Idempotency-Key"] = key
        return call(self.url + "/api/v1/submissions", "POST", token, body, headers)

    def regrade(self, token: str, body: dict[str, str]) -> Answer:
        return call(self.url + "/api/v1/regrade", "POST", token, json.dumps(body).encode(),
                    {"Content-Type": "application/json"})

    def get(self, path: str, token: str | None) -> Answer:
        return call(self.url + path, token=token)

    def wait_finished(self, token: str, ids: list[str], timeout: float = 180) -> dict[str, dict[str, Any]]:
        def states() -> dict[str, dict[str, Any]] | None:
            found = {i: self.get(f"/api/v1/submissions/{i}", token).json() for i in ids}
            return found if all(s["status"] in ("graded", "failed") for s in found.values()) else None

        return wait_for(states, timeout, f"{len(ids)} submissions to be graded", 0.5)
