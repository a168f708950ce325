"""Autograder entry points for learning-management systems: find the submission, grade it, write results.

Gradescope runs `/autograder/run_autograder` in its container with the student's files in
`/autograder/submission/` and reads `/autograder/results/results.json`. Ours is two lines:

    #!/usr/bin/env bash
    grade gradescope ex03        # or: grade gradescope (the exercise is found from the file name)

PrairieLearn's external grader mounts the files in `/grade/student/` and reads
`/grade/results/results.json`: its entry point is `grade prairielearn ex03`. Both paths are options
(tests run them in temporary folders). The course with its hidden checks must be in the image:
`pip install` the grader and point `GRADER_COURSE` at the course's `exercises/` folder.

Results are always written, whatever happens (a missing file is a zero with its reason), because an
LMS shows "the autograder failed" to the student when there is no results file at all.

The hidden checks' references sit on the grading machine beside the submission, so before any student
code runs the entry point makes sure the sandboxed child cannot read them (`hidden_exposure`): at the
namespaces tier they are outside its filesystem view; at the process tier, as root, the child runs as a
uid of its own and the hidden folder is made owner-only (0700 folders, 0600 files). Where neither holds
(not root, no namespaces), nothing is run: results.json says so in one line, with the status
`hidden-unprotected` (docs/security.md, "Batch inputs and packages").
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from grader.course import exercises, filenames
from grader.course.submission import SubmissionNotFound
from grader.grading import pipeline as grading
from grader.model.report import RunStatus
from grader.sandbox import tiers

# The defaults of `grade gradescope` and `grade prairielearn` too: the command line reads them at every start,
# so this module imports the formats and the results writer only where it uses them.
GRADESCOPE_SUBMISSION = Path("/autograder/submission")
GRADESCOPE_RESULTS = Path("/autograder/results/results.json")
PRAIRIELEARN_SUBMISSION = Path("/grade/student")
PRAIRIELEARN_RESULTS = Path("/grade/results/results.json")
SUFFIXES = (".py", ".ipynb")
MAX_DEPTH = 8  # folders below the upload's root that are searched
MAX_FILES = 10_000


HIDDEN_UNPROTECTED = "hidden-unprotected"  # the run status when the sandbox here cannot hide the hidden part
UNPROTECTED_MESSAGE = ("Not graded: on this grading machine the sandbox cannot keep the hidden checks from your "
                       "code ({why}); this is not your doing. Course staff: run the autograder as root, or where "
                       "user namespaces are allowed (docs/security.md).")


class NoSubmission(LookupError):
    """Nothing gradable in the submission folder; the message is for the student."""


class HiddenUnprotected(RuntimeError):
    """The sandbox this machine offers would let a submission read the hidden part: nothing is graded."""


def find_submission(folder: Path, exercise_id: str | None = None) -> tuple[str, Path]:
    """(exercise, file): `EX.py` or `EX.ipynb` in the folder or below it (uploads are sometimes nested).

    Without an exercise id, the folder must hold exactly one exercise's file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NoSubmission(f"no submission folder at {folder}.")
    wanted = [exercise_id] if exercise_id else exercises.exercise_ids()
    found: dict[str, Path] = {}
    # The shallowest file wins, and .py before .ipynb at the same depth, as in single mode.
    for candidate in sorted(_files(folder), key=lambda p: (len(p.parts), p.suffix != ".py", str(p))):
        if candidate.stem in wanted and candidate.suffix in SUFFIXES and candidate.is_file() \
                and not candidate.is_symlink():
            found.setdefault(candidate.stem, candidate)
    if not found:
        found = _near_misses(folder, wanted, exercise_id)
    if not found:
        names = " or ".join(f"{e}.py / {e}.ipynb" for e in wanted[:1]) if exercise_id else "an exNN.py file"
        raise NoSubmission(f"no submission found: please upload {names}. {_what_was_found(folder)}")
    if len(found) > 1:
        raise NoSubmission(f"the upload holds files for several exercises ({', '.join(sorted(found))}); "
                           "upload one exercise per assignment.")
    return next(iter(found.items()))


def _near_misses(folder: Path, wanted: list[str], exercise_id: str | None) -> dict[str, Path]:
    """No exact name: `Ex03.py`, `ex03 (1).py`, `ex3.py` (filenames.exercise_of), else, for a given exercise,
    the upload's one .py/.ipynb file (`my_ex03_final.py`)."""
    files = [p for p in sorted(_files(folder), key=lambda p: (len(p.parts), p.suffix != ".py", str(p)))
             if p.is_file() and not p.is_symlink()]
    found: dict[str, Path] = {}
    for candidate in files:
        taken = filenames.exercise_of(candidate.name, wanted)
        if taken is not None:
            found.setdefault(taken.exercise, candidate)
    if not found and exercise_id:
        taken = filenames.the_only_one([p.name for p in files], exercise_id)
        if taken is not None:
            found[exercise_id] = next(p for p in files if filenames.split(p.name) is not None)
    return found


def _files(folder: Path) -> list[Path]:
    """Every file in the upload down to MAX_DEPTH folders (an upload may nest 1,000 folders deep), no links."""
    files: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=False, onerror=lambda error: None):
        if len(Path(root).relative_to(folder).parts) >= MAX_DEPTH:
            dirs.clear()
        files += [Path(root, name) for name in names]
        if len(files) > MAX_FILES:
            break
    return files


def _what_was_found(folder: Path, shown: int = 10) -> str:
    """One sentence naming what the upload holds, so a student sees why `Ex03.py` was not taken."""
    try:
        names = sorted(str(p.relative_to(folder)) for p in _files(folder))
    except (OSError, RecursionError):
        return ""
    if not names:
        return "The upload is empty."
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"Found: {', '.join(names[:shown])}{more}."


def _grade(submission_dir: Path, exercise_id: str | None, limits: grading.Limits | None) -> Any:
    exercise, path = find_submission(submission_dir, exercise_id)
    worker = grading.start_worker(exercise, "auto")
    try:
        why = hidden_exposure(exercises.load(exercise).folder / "hidden", worker.info()["sandbox"])
        if why is not None:
            raise HiddenUnprotected(UNPROTECTED_MESSAGE.format(why=why))
        return grading.grade(exercise, path, device="auto", limits=limits, worker=worker)
    finally:
        worker.close()


def hidden_exposure(hidden: Path, plan: dict[str, Any]) -> str | None:
    """Why a job of a worker with this sandbox plan could read the `hidden` folder; None when it cannot.

    At a tier with a filesystem of its own (namespaces) the child sees only the system and Python (read-only):
    a course elsewhere is not there. Otherwise it must run as a uid of its own (the process tier as root), and
    the hidden part is made owner-only here, then checked: a folder or file others may read is exposure.
    """
    if not hidden.exists():
        return None  # nothing hidden here to keep
    entry = tiers.lookup(plan.get("tier"))
    if entry is not None and entry.private_filesystem and not _in_sandbox_view(hidden):
        return None
    own_uid = plan.get("student_uid")
    if not own_uid:
        return (f"at the {plan.get('tier')!r} tier without a uid of its own, your code runs as the grader's user, "
                "who can read them")
    open_to_others = _make_owner_only(hidden, own_uid)
    if open_to_others:
        return f"{open_to_others} stays readable by other users"
    return None


def _in_sandbox_view(path: Path) -> bool:
    from grader.sandbox.rootfs import SYSTEM_PATHS, python_paths

    real = os.path.realpath(path)
    return any(real == top or real.startswith(top.rstrip("/") + "/") for top in (*SYSTEM_PATHS, *python_paths()))


def _make_owner_only(hidden: Path, student_uid: int) -> str | None:
    """chmod the hidden tree to 0700 folders and 0600 files (links are left alone, never followed); the
    first path the student's uid could still read or enter, or None."""
    paths = [hidden]
    for root, dirs, files in os.walk(hidden, followlinks=False):
        paths += [Path(root, name) for name in dirs + files]
    for path in paths:
        try:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) != wanted:
                os.chmod(path, wanted, follow_symlinks=False)
                info = path.lstat()
        except OSError:
            return str(path)
        if info.st_uid == student_uid or info.st_gid == student_uid or stat.S_IMODE(info.st_mode) & 0o077:
            return str(path)
    return None


def run_gradescope(exercise_id: str | None = None, submission_dir: Path = GRADESCOPE_SUBMISSION,
                   results_path: Path = GRADESCOPE_RESULTS, limits: grading.Limits | None = None) -> dict[str, Any]:
    """Grade the Gradescope submission and write results.json, whatever happens; returns what was written."""
    return gradescope_entry(exercise_id, submission_dir, results_path, limits)[0]


def gradescope_entry(exercise_id: str | None = None, submission_dir: Path = GRADESCOPE_SUBMISSION,
                     results_path: Path = GRADESCOPE_RESULTS,
                     limits: grading.Limits | None = None) -> tuple[dict[str, Any], str]:
    """run_gradescope, and the run's status (`grader-failure` where the grader itself failed: exit 3).

    Where the grader fails (its sandbox cannot start, a bug), results.json still says so, with a zero and
    the reason: Gradescope shows "the autograder failed" with nothing to read when there is no file at all.
    """
    from grader.formats import gradescope

    started = time.monotonic()
    try:
        report = _grade(submission_dir, exercise_id, limits)
        data, status = gradescope.results(report), report.status
    except (NoSubmission, SubmissionNotFound) as exc:
        data, status = gradescope.failure(str(exc), time.monotonic() - started), RunStatus.UNREADABLE
    except HiddenUnprotected as exc:
        data, status = gradescope.failure(str(exc), time.monotonic() - started), HIDDEN_UNPROTECTED
    except Exception as exc:  # noqa: BLE001 - the grader's own failure: still a results file
        data, status = gradescope.failure(_grader_failed(exc), time.monotonic() - started), RunStatus.GRADER_FAILURE
    data.setdefault("extra_data", {})["status"] = status
    _write_results(Path(results_path), data)
    return data, status


def run_prairielearn(exercise_id: str | None = None, submission_dir: Path = PRAIRIELEARN_SUBMISSION,
                     results_path: Path = PRAIRIELEARN_RESULTS, limits: grading.Limits | None = None,
                     reveal_hidden: bool = False) -> dict[str, Any]:
    """Grade the PrairieLearn submission and write results.json, whatever happens; returns what was written."""
    return prairielearn_entry(exercise_id, submission_dir, results_path, limits, reveal_hidden)[0]


def prairielearn_entry(exercise_id: str | None = None, submission_dir: Path = PRAIRIELEARN_SUBMISSION,
                       results_path: Path = PRAIRIELEARN_RESULTS, limits: grading.Limits | None = None,
                       reveal_hidden: bool = False) -> tuple[dict[str, Any], str]:
    """run_prairielearn, and the run's status. Nothing to grade, or a grader that failed, is `gradable: false`:
    the attempt does not count."""
    from grader.formats import prairielearn

    try:
        report = _grade(submission_dir, exercise_id, limits)
        data, status = prairielearn.results(report, reveal_hidden), report.status
    except (NoSubmission, SubmissionNotFound) as exc:
        data, status = prairielearn.failure(str(exc)), RunStatus.UNREADABLE
    except HiddenUnprotected as exc:
        data, status = prairielearn.failure(f"{exc} This attempt does not count."), HIDDEN_UNPROTECTED
    except Exception as exc:  # noqa: BLE001 - SandboxFailure or a bug: still a results file
        data = prairielearn.failure(_grader_failed(exc) + " This attempt does not count.")
        status = RunStatus.GRADER_FAILURE
    _write_results(Path(results_path), data)
    return data, status


def _write_results(path: Path, data: dict[str, Any]) -> None:
    from grader.formats.files import write_atomic

    write_atomic(path, json.dumps(data, indent=2))


def _grader_failed(exc: BaseException) -> str:
    return f"The grader itself failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); " \
           "this is not your doing."
