"""Building a report: the one place a Report is made and the one place a run's status is decided.

grade() (pipeline.py), a run the grader itself could not finish (failure_report) and a submission that was
never run to the end (report_without_run, the service's failed-after-N-attempts) all build here, so that
every report gets its status from run_status and its hints from the same call.
"""

from __future__ import annotations

import importlib.metadata
import platform
import signal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.course import exercises, hints
from grader.course.submission import MAX_SUBMISSION_BYTES, Loaded, file_sha256, read
from grader.grading import compare
from grader.model.job import Limits
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission
from grader.sandbox.protocol import ChildError, Outcome
from grader.sandbox.tiers import Tier


@cache  # importlib.metadata parses torch's METADATA file: ~10 ms, once per grade otherwise
def versions() -> dict[str, str]:
    def installed(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": installed("torch")}


def report(exercise: exercises.Exercise | None, submission: Submission, checks: tuple[CheckResult, ...], *,
           status: RunStatus, devices: tuple[str, ...], sandbox: dict[str, Any], limits: Limits,
           error: str | None, exercise_id: str = "", title: str = "", references_sha256: str | None = None,
           duration_s: float = 0.0, output: str = "", hidden_output: str = "",
           cell_errors: tuple[str, ...] = (), hidden_pending: float = 0.0) -> Report:
    """The one place a Report is made (model.report.from_dict only reads one back). `status` comes from
    run_status, the one place that decides it; the checks get the hint that helps their diagnosis here."""
    return hints.annotate(Report(
        exercise=exercise.id if exercise is not None else exercise_id,
        title=exercise.title if exercise is not None else title or exercise_id,
        submission=submission,
        checks=checks,
        devices=devices,
        grader_version=__version__,
        versions=versions(),
        sandbox={**sandbox, "limits": limits.as_job()},
        duration_s=duration_s,
        error=error,
        output=output,
        references_sha256=exercise.references_digest() if references_sha256 is None and exercise is not None
        else references_sha256 or "",
        status=status,
        hidden_output=hidden_output,
        cell_errors=cell_errors,
        hidden_pending=hidden_pending,
    ))


def failure_report(exercise_id: str, path: Path | str, reason: str, limits: Limits | None = None) -> Report:
    """A report for a run the grader itself could not finish (status `grader-failure`): every check at zero.

    Built from as little as possible (the exercise's spec, the file's digest when it can be read), since
    something already went wrong.
    """
    try:
        exercise = exercises.load(exercise_id)
        names = [(c.name, c.points, c.visibility) for c in exercise.checks]
        title, digest = exercise.title, exercise.references_digest()
    except Exception:  # noqa: BLE001 - the failure being reported may be this very one
        names, title, digest = [], exercise_id, ""
    try:
        sha, size = file_sha256(Path(path)), min(Path(path).stat().st_size, MAX_SUBMISSION_BYTES + 1)
    except (OSError, ValueError):
        sha, size = "0" * 64, 0
    kind = "ipynb" if str(path).endswith(".ipynb") else "py"
    message = f"the grader failed ({reason}); this is not your doing: please report it."
    checks = tuple(CheckResult(name=n, status=Status.ERROR, score=0.0, max_score=p, symptom=message,
                               visibility=v) for n, p, v in names)
    return report(None, Submission(str(path), sha, kind, size), checks, status=run_status(None, None, reason),
                  devices=(), sandbox={"tier": Tier.FAILED}, limits=limits or Limits(), error=message,
                  exercise_id=exercise_id, title=title, references_sha256=digest)


def report_without_run(exercise_id: str, path: Path | str, problem: str, limits: Limits | None = None,
                       tier: str = Tier.FAILED) -> Report:
    """A valid report for a submission that was never run to the end (every check gets `problem`, no
    points): what the service stores when a submission has broken its worker too many times."""
    exercise = exercises.load(exercise_id)
    loaded = read(Path(path), exercise_id)
    devices = ("cpu",)
    checks = compare.results(exercise, exercise.checks, list(devices), None, problem)
    # Never run to the end: run_status decides from that (never `ok`), as for every other report.
    return report(exercise, loaded.submission, checks, status=run_status(loaded, None, problem), devices=devices,
                  sandbox={"tier": tier}, limits=limits or Limits(), error=problem)


def run_status(loaded: Loaded | None, outcome: Outcome | None, failure: str | None) -> RunStatus:
    """How the run as a whole ended (the report's `status`): the one place that decides it.

    From what happened only: the reader's verdict, the worker's account (exit status, signal, limits) and
    the kinds of message on the channel; never from the wording of a message.
    """
    if loaded is not None and loaded.problem:
        return RunStatus(loaded.problem_status or RunStatus.UNREADABLE)
    if failure is not None or outcome is None:
        return RunStatus.GRADER_FAILURE
    if outcome.channel_error:
        return RunStatus.REJECTED
    if outcome.load_error is not None:
        return RunStatus.EXITED if outcome.load_error.error.type == "SystemExit" else RunStatus.IMPORT_ERROR
    if outcome.memory_exceeded:
        return RunStatus.MEMORY_LIMIT
    if outcome.timed_out:
        return RunStatus.TIMEOUT
    if outcome.done:
        return RunStatus.OK
    if outcome.signal:
        return RunStatus.CRASHED
    if outcome.hello is None:
        return RunStatus.GRADER_FAILURE  # the child never reached the point where a submission's code can run
    return RunStatus.EXITED


def run_problem(status: RunStatus, loaded: Loaded, outcome: Outcome | None, limits: Limits,
                failure: str | None = None) -> str | None:
    """What went wrong with the run as a whole, in words for the student (None when it finished)."""
    if status in (RunStatus.UNREADABLE, RunStatus.SYNTAX_ERROR):
        return loaded.problem
    if status is RunStatus.OK:
        return None
    if status is RunStatus.GRADER_FAILURE or outcome is None:
        return f"the grader could not run your submission ({failure or 'its sandbox did not start'}); " \
               "please report this."
    if status is RunStatus.REJECTED:
        return f"the grader rejected your results: {outcome.channel_error}."
    if status in (RunStatus.IMPORT_ERROR, RunStatus.EXITED) and outcome.load_error is not None:
        return "your file could not be imported: " + describe_load_error(outcome.load_error.error)
    if status is RunStatus.MEMORY_LIMIT:
        return f"your code used more than {limits.memory_mib} MiB of memory and was stopped."
    if status is RunStatus.TIMEOUT:
        return (f"your code did not finish within {limits.timeout:g} s (an endless loop, or far too many "
                "epochs?); checks that had not finished get no points.")
    if status is RunStatus.CRASHED:
        sig = outcome.signal or 0  # crashed: a signal it was
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else ""
        return f"your code crashed the grading process (signal {sig} {name}).".replace(" )", ")")
    return (f"your code ended the grading process early (exit status {outcome.exit_code}). "
            "Did you call sys.exit(), exit() or os._exit()?")


def notebook_cell_errors(outcome: Outcome | None) -> list[str]:
    """Each notebook cell that raised (the cells after it still ran), in words for the student; listed in
    every report, full marks or not (Report.cell_errors)."""
    return [describe_cell_error(e) for e in (outcome.cell_errors if outcome else ())]


def notebook_cell_problems(outcome: Outcome | None) -> str | None:
    """The notebook cells that raised and were skipped (the others still ran), in words for the student."""
    described = notebook_cell_errors(outcome)
    if not described:
        return None
    more = f"; and {len(described) - 3} more" if len(described) > 3 else ""
    return "Some cells of your notebook raised an error, and the code after the error in each was not run: " + \
        "; ".join(described[:3]) + more + "."


def describe_cell_error(error: ChildError) -> str:
    lines = error.message.strip().splitlines() or ["an error"]
    where, cell = error.where, error.cell
    text = lines[-1] + (f" (at {where})" if where else "")
    if cell and not str(where or "").startswith(cell + ","):  # raised in a function another cell defined
        text = f"{cell} stopped: {text}"
    if error.type == "EOFError":
        text += " — input() cannot read anything while grading; give the value directly instead"
    return text


def describe_load_error(error: ChildError) -> str:
    kind, message, where = error.type, error.message, error.where
    text = message + (f" (at {where})" if where else "")
    if kind == "EOFError":
        text += (" Your file calls input() while it is being imported, and input() is not available while "
                 "grading (there is no keyboard): remove the input() call or put it under "
                 "`if __name__ == '__main__':`.")
    elif kind == "SystemExit":
        text += " Your file calls sys.exit() or exit() while it is being imported."
    elif kind == "ModuleNotFoundError":
        text += " Only numpy and torch (and the standard library) are available while grading."
    return text
