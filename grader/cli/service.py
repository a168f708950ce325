"""`grade serve` and `grade token`: starting the grading service, and managing its bearer tokens."""

from __future__ import annotations

from typing import Any

import click

from grader.cli.cluster import _dask_refusal, _quiet_dask_logs
from grader.cli.group import (
    GraderFailure,
    main,
)


def _service_modules() -> Any:
    """grader/service/config.py (the configuration, the token administration), once the `service` extra is
    known to be there: the application's modules import too, or this is one line naming what is missing."""
    try:
        import grader.service.app  # noqa: F401 - FastAPI and the rest of the extra, checked now
        from grader.service import config
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"the grading service needs the `service` extra ({exc.name} is missing): "
                               "pip install 'dl-grader[service]'") from None
    return config


@main.command(help="Run the grading service (HTTP API, pages, warm workers; the database is the record).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL [default: sqlite file grade-service.sqlite3 "
                                                   "in the working directory]; postgresql://user@host/db to share.")
@click.option("--jobs", type=click.IntRange(1), default=None, help="Parallel workers [default: number of cores].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Grade on a Dask cluster, e.g. tcp://host:8786 (needs the `dask` extra).")
@click.option("--public-url", default=None, metavar="URL",
              help="The address the outside world uses (https://grader.example.org): report and callback links "
                   "are made from it, never from a request's Host header; https also marks the page cookie Secure "
                   "[default: http://HOST:PORT].")
def serve(host: str, port: int, db_url: str | None, jobs: int | None, scheduler: str | None,
          public_url: str | None) -> None:
    service_config = _service_modules()
    if scheduler:  # refuse an unreachable or unfit cluster now, in one line; the runner connects on its own
        checked = _dask_executor(scheduler, jobs)
        jobs = checked.capacity
        checked.close(wait=False)
    import uvicorn

    from grader.classroom.batch import default_jobs
    from grader.service.app import create_app

    service_logging()
    if public_url is None:
        shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        public_url = f"http://{shown}:{port}"
    config = service_config.Config.from_environment(db_url=db_url, jobs=jobs or default_jobs(), scheduler=scheduler,
                                                    public_url=public_url)
    try:
        app = create_app(config)  # migrates the database now: a bad --db fails here, in one line
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        listening = _listen(host, port)
    except OSError as exc:
        app.state.service.close()
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    for line in serve_banner(listening.getsockname(), db_url, config.jobs, scheduler):
        click.echo(line)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[listening])


def service_logging() -> None:
    """`grade serve`'s log on stderr: the grader's own lines from INFO (runners started, stopped, restarted), the
    libraries' (Alembic's migration steps, SQLAlchemy, uvicorn) only from WARNING, when something is wrong."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("grader").setLevel(logging.INFO)


def _listen(host: str, port: int) -> Any:
    """The listening socket, bound here so that the start-up lines name the real port and a port in use is one
    line (uvicorn would bind it only after the service's start-up, and log a traceback-like error)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not create_server's 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # they are TCP, and with Nagle on, a response's body (written after its head) waited for the client's
    # delayed ACK: 40 ms on every answer with a body over a kept-alive connection
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(2048)
    except OSError:
        listening.close()
        raise
    return listening


def serve_banner(address: tuple[Any, ...], db_url: str | None, jobs: int, scheduler: str | None) -> list[str]:
    """What an operator needs first: where the service listens, which database it uses (never its password),
    where the pages and the API's description are."""
    from sqlalchemy.engine import make_url

    from grader.service.db import default_url

    host, port = address[0], address[1]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    database = make_url(db_url or default_url()).render_as_string(hide_password=True)
    graders = f"on the Dask cluster at {scheduler} ({jobs} slots)" if scheduler else \
        f"in {jobs} runner process{'es' if jobs != 1 else ''}"
    return [f"grade serve: listening on {base}/ (the upload page; instructors: {base}/class)",
            f"grade serve: database {database}",
            f"grade serve: grading {graders}",
            f"grade serve: the API's description {base}/openapi.json; the guide docs/operator/service.md"]


def _dask_executor(scheduler: str, jobs: int | None) -> Any:
    refused = _dask_refusal()
    from grader.execution.cluster import DaskExecutor
    from grader.execution.executor import ExecutorGone

    _quiet_dask_logs()  # a lost scheduler is the service's own one-line warnings, not Dask's tracebacks
    try:
        return DaskExecutor(scheduler, jobs, prewarm="ex03")
    except ExecutorGone as exc:
        raise GraderFailure(str(exc)) from None
    except refused as exc:
        raise click.UsageError(str(exc)) from None


@main.group(help="Manage the grading service's bearer tokens.")
def token() -> None:
    pass


@token.command("add", help="Create a bearer token and print it once (the service stores only its hash).")
@click.option("--role", required=True, type=click.Choice(["instructor", "lms", "student"]))
@click.option("--student", default=None, help="The student a student token submits and reads as.")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def token_add(role: str, student: str | None, db_url: str | None) -> None:
    service_config = _service_modules()
    if role == "student" and not student:
        raise click.UsageError("a student token needs --student ID.")
    if student and not service_config.STUDENT_ID.fullmatch(student):
        raise click.UsageError("a student id is 1-128 letters, digits, '.', '_', '@' or '-'.")
    try:
        click.echo(service_config.add_token(db_url, role, student))
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


@token.command("list", help="The tokens, one a line: id, role, student, created, revoked (never the token itself).")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def token_list(db_url: str | None) -> None:
    import datetime

    service_config = _service_modules()

    def when(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    try:
        rows = service_config.list_tokens(db_url)
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    for row in rows:
        revoked = f"revoked {when(row.revoked_at)}" if row.revoked_at else "active"
        click.echo(f"{row.id}\t{row.role}\t{row.student or '-'}\t{when(row.created_at)}\t{revoked}")


@token.command("revoke", help="Revoke a token, given as itself or by its id from `grade token list`; a running "
                              "service stops taking it within a minute. Its submissions and reports stay.")
@click.argument("token_or_id")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def token_revoke(token_or_id: str, db_url: str | None) -> None:
    service_config = _service_modules()
    try:
        row = service_config.revoke_token(db_url, token_or_id.strip())
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if row is None:
        raise click.UsageError("no such token in this database (give the token itself, or its id from "
                               "`grade token list`).")
    click.echo(f"revoked token {row.id} ({row.role}{', ' + row.student if row.student else ''})")
