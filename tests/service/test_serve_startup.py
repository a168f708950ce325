"""An operator's first minutes: `grade serve` says where it listens, which database it uses (never the password)
and where its pages and API description are; the migrations and the libraries stay quiet unless something is
wrong; a port in use is one line, exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import SERVICE_ENV, call, free_port, wait_for

from grader.cli.service import serve_banner

pytest.importorskip("fastapi")


def test_the_banner_names_the_address_and_database_and_hides_the_password():
    lines = serve_banner(("127.0.0.1", 8000), "postgresql://grader:s3cret@db.example/grades", 4, None)
    text = "\n".join(lines)
    assert "http://127.0.0.1:8000/" in text and "http://127.0.0.1:8000/openapi.json" in text
    assert "postgresql://grader:***@db.example/grades" in text
    assert "s3cret" not in text
    assert "4 runner processes" in text and "docs/operator/service.md" in text
    page = (Path(__file__).resolve().parents[2] / "docs" / "operator" / "service.md").read_text("utf-8")
    assert "\n".join(lines) in page  # the guide shows exactly what it prints
    assert "Dask cluster at tcp://10.0.0.1:8786 (16 slots)" in "\n".join(
        serve_banner(("::1", 8000, 0, 0), None, 16, "tcp://10.0.0.1:8786"))
    assert "http://[::1]:8000/" in serve_banner(("::1", 8000, 0, 0), None, 1, None)[0]


def _serve(tmp_path: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader.cli", "serve", "--port", str(port), "--jobs", "1",
                             "--db", f"sqlite:///{tmp_path / 'grades.sqlite3'}"],
                            cwd=tmp_path, env={**os.environ, **SERVICE_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.service
@pytest.mark.slow
def test_grade_serve_says_where_it_listens_and_keeps_the_libraries_quiet(tmp_path):
    port = free_port()
    process = _serve(tmp_path, port)
    try:
        wait_for(lambda: process.poll() is not None or _healthy(port), 120, "grade serve to be healthy", 0.5)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal once it is done
    assert f"listening on http://127.0.0.1:{port}/" in out
    assert f"database sqlite:///{tmp_path / 'grades.sqlite3'}" in out
    assert f"http://127.0.0.1:{port}/openapi.json" in out
    # Alembic's migration steps ("Context impl SQLiteImpl.", "Running upgrade ...") are INFO lines: not shown.
    assert "alembic" not in err and "Context impl" not in err and "Running upgrade" not in err, err
    assert "Traceback" not in err, err
    assert all(" grader." in line for line in err.splitlines() if " INFO " in line), err


def _healthy(port: int) -> bool:
    try:
        return call(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    except OSError:
        return False


@pytest.mark.service
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = _serve(tmp_path, port)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 2, (out, err)
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert "Traceback" not in err
