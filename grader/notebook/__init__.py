"""Check and submit from a Jupyter notebook: what this kernel ran, graded outside it, the feedback in place.

    from grader.notebook import check, hint, check_all, submit
    check("ex03")       # grades what this kernel defines now; the feedback appears under the cell
    hint("ex03")        # the next hint, as `grade hint ex03`
    check_all()         # every exercise this notebook has started, one line each
    submit("ex03", url="https://grader.example.edu", token="...")   # to `grade serve`

`%load_ext grader` then `%grade ex03` does what `check("ex03")` does.

This module is what the kernel imports, and it stays light: no torch, no NumPy, no grading code. At import
it starts the grading host (host.py) beside the kernel, whose warm workers import torch while the student
works; `check` hands it the cells the kernel ran (history.py) and shows what comes back. The student's
code never runs in this kernel a second time, and the host ends with the kernel.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from typing import Any

from grader.notebook.history import defined_names, notebook_json, ran_cells
from grader.notebook.results import Result, Text, one_line_html

__all__ = ["Result", "check", "check_all", "hint", "submit"]

ANSWER_TIMEOUT_S = 600.0  # a worker's cold start (120 s at worst) plus a check's own time limit, with room
EXERCISE_ID = re.compile(r"\bex\d{2}\b")


class _Host:
    """The kernel's handle on its grading host: JSON lines over a pipe, one request at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.process = self._start()

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        # -I: the student's folder (a `grader.py` of theirs, say) never shadows the grader; its own session,
        # so that Jupyter's interrupt (a signal to the kernel's process group) does not reach it.
        # GRADER_NOTEBOOK_HOST: `-m grader.notebook.host` imports this package first; the host must not
        # start a host of its own (that recursion was a fork bomb).
        return subprocess.Popen([sys.executable, "-I", "-m", "grader.notebook.host", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                cwd="/", start_new_session=True, env={**os.environ, "GRADER_NOTEBOOK_HOST": "1"})

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            for attempt in (1, 2):
                if self.process.poll() is not None:
                    self.process = self._start()
                try:
                    return self._exchange(request)
                except (BrokenPipeError, EOFError, OSError):
                    if attempt == 2:
                        return {"error": "the grading host stopped; run the cell again (or restart the kernel)."}
                    self.process.kill()
            raise AssertionError("unreachable")

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        number = next(self.ids)
        self.process.stdin.write((json.dumps({**request, "id": number}) + "\n").encode("utf-8"))
        self.process.stdin.flush()
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while True:  # an answer to an earlier request that was interrupted (Ctrl-C) is skipped
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                self.process.kill()
                return {"error": "the grader did not answer in time; run the cell again."}
            line = self.process.stdout.readline()
            if not line:
                raise EOFError
            answer = json.loads(line)
            if answer.get("id") == number:
                return answer

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


if os.environ.get("GRADER_NOTEBOOK_HOST") != "1":
    _host = _Host()  # at import: the workers warm up while the student works
    atexit.register(_host.close)


def _inputs() -> list[str] | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    return list(shell.history_manager.input_hist_parsed)


NOT_IN_A_KERNEL = ("check() grades what a Jupyter (IPython) kernel has run; outside one, save your code and run "
                   "`grade {exercise} FILE` instead.")


def _cells_request(exercise: str) -> dict[str, Any] | str:
    inputs = _inputs()
    if inputs is None:
        return NOT_IN_A_KERNEL.format(exercise=exercise)
    cells = ran_cells(inputs)
    return {"exercise": exercise, "notebook": notebook_json(cells), "defined": sorted(defined_names(cells))}


def check(exercise: str) -> Result:
    """Grade the exercise's functions as this kernel defines them now (the visible checks)."""
    request = _cells_request(str(exercise))
    if isinstance(request, str):
        return Result({"error": request})
    return Result(_host.ask({"op": "check", **request}))


def hint(exercise: str, number: int | None = None) -> Text | Result:
    """The next hint for the exercise (or hint `number`), as `grade hint EX [-n N]`."""
    answer = _host.ask({"op": "hint", "exercise": str(exercise), "number": number})
    if answer.get("error"):
        return Result(answer)
    return Text(answer["text"], answer["html"])


def check_all() -> Text:
    """Every exercise this notebook has started, checked, one line each. Started: named in a cell that ran
    (`check("ex03")`, a comment, the stub's docstring), or all of its functions defined."""
    inputs = _inputs()
    if inputs is None:
        line = NOT_IN_A_KERNEL.format(exercise="EX")
        return Text(line, one_line_html(line))
    listed = _host.ask({"op": "exercises"}).get("exercises", [])
    cells = ran_cells(inputs)
    defined = defined_names(cells)
    named = set(EXERCISE_ID.findall("\n".join(s for s in inputs if isinstance(s, str))))
    started = [e["id"] for e in listed if e["id"] in named] or \
        [e["id"] for e in listed if set(e["functions"]) <= defined]
    if not started:
        line = "No exercise started in this notebook yet: name one, e.g. check(\"ex01\")."
        return Text(line, one_line_html(line))
    results = [(e, Result(_host.ask({"op": "check", "exercise": e, "notebook": notebook_json(cells),
                                     "defined": sorted(defined)}))) for e in started]
    lines = [r.summary for _, r in results]
    import html

    rows = "".join(f'<tr><td style="padding: .2rem .6rem"><strong>{html.escape(e)}</strong></td>'
                   f'<td style="padding: .2rem .6rem">{html.escape(r.summary)}</td></tr>' for e, r in results)
    return Text("\n".join(lines), f'<table style="color: inherit">{rows}</table>')


def submit(exercise: str, url: str | None = None, token: str | None = None, *,
           timeout: float = 900.0) -> Result:
    """Send what `check` grades to `grade serve`, show progress while queued and running, then the report
    (the student view). The token may come from GRADE_TOKEN, the address from GRADE_URL."""
    from grader.notebook import remote

    request = _cells_request(str(exercise))
    if isinstance(request, str):
        return Result({"error": request.replace("check()", "submit()")})
    return remote.submit(_host, request, url, token, timeout)
