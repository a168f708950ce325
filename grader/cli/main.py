"""The `grade` command: click commands only; every one of them calls the library and formats its answer.

`grade EX [FILE]` grades; the other verbs are subcommands. Exit status: 0 full marks, 1 graded below full
marks, 2 usage error (one line on stderr).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from grader.classroom import layouts
from grader.classroom import similarity as alike
from grader.course import exercises
from grader.grading import pipeline as grading
from grader.grading.pipeline import DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S, DEVICES
from grader.lms import autograder as lms
from grader.lms import packages as packaging
from grader.model import sanitize
from grader.sandbox import doctor as sandbox_doctor
from grader.sandbox.client import SANDBOX_CHOICES

SUBCOMMANDS_HELP = "Run `grade EX [FILE]` to grade a submission, e.g. `grade ex03`."


def library_default(function: Callable[..., Any], parameter: str) -> Any:
    """The library function's own keyword default, so that an option's default is written once."""
    return inspect.signature(function).parameters[parameter].default


class ExerciseType(click.ParamType):
    """An exercise id that exists in this course."""

    name = "exercise"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        known = exercises.exercise_ids()
        if value not in known:
            self.fail(f"unknown exercise {value!r}; choose from {', '.join(known)}", param, ctx)
        return value


EXERCISE = ExerciseType()


class OneLineUsageError(click.UsageError):
    """A usage error shown as the contract wants it: one line on stderr, exit status 2."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class GradeGroup(click.Group):
    """`grade ex03 file.py` runs the hidden `check` command: an exercise id is a command name too."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `grade`: the help text, not an error line
        except click.UsageError as exc:  # `grade --bogus`
            raise OneLineUsageError(exc.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # bad argument, unknown exercise, missing file, absent cuda
            raise OneLineUsageError(exc.format_message()) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and exercises.EXERCISE_ID.fullmatch(args[0]):
            return "check", self.commands["check"], args
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise click.UsageError(f"unknown exercise or command {args[0]!r}. Try `grade list`.")
        return super().resolve_command(ctx, args)


def sandbox_options(function: Any) -> Any:
    function = click.option("--memory", "memory", type=click.IntRange(64), default=DEFAULT_MEMORY_MIB,
                            show_default=True, help="Memory limit per submission, MiB.")(function)
    function = click.option("--timeout", type=click.FloatRange(0.5), default=DEFAULT_TIMEOUT_S,
                            show_default=True, help="Wall-clock limit per submission, seconds.")(function)
    return click.option("--device", type=click.Choice(DEVICES), default=library_default(grading.grade, "device"),
                        show_default=True,
                        help="auto = cpu, plus cuda when available.")(function)


def _plot_suffix(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--plot writes the format its suffix names, so a .pdf is a PDF; any other suffix is refused."""
    from grader.formats.plot import FORMATS

    if value is not None and value.suffix.lower().lstrip(".") not in FORMATS:
        raise click.BadParameter(f"{value.name}: the plot is written as {', '.join('.' + f for f in FORMATS)}; "
                                 "name the file with one of these suffixes.", ctx, param)
    return value


@click.group(cls=GradeGroup, help="Grade gradient-descent and autograd exercises. " + SUBCOMMANDS_HELP)
@click.version_option(package_name="dl-grader")
def main() -> None:
    pass


@main.command("list", help="The exercises, one a line: id and title.")
def list_exercises() -> None:
    for exercise_id in exercises.exercise_ids():
        click.echo(f"{exercise_id}  {exercises.load(exercise_id).title}")


@main.command(help="Write the stub for EX to DIR/EX.py.")
@click.argument("exercise", type=EXERCISE)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(exercise: str, directory: Path, force: bool) -> None:
    target = directory / f"{exercise}.py"
    if target.exists() and not force:
        raise click.UsageError(f"{target} already exists; use --force to overwrite it.")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(exercises.load(exercise).stub, "utf-8")
    click.echo(f"Wrote {target}. Read the statement with `grade hint {exercise} --statement`, "
               f"then run `grade {exercise}`.")


@main.command("check", hidden=True)
@click.argument("exercise", type=EXERCISE)
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the JSON report here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), callback=_plot_suffix,
              help="Draw loss and w curves against the reference: .png, .svg or .pdf (needs matplotlib).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report page.")
@sandbox_options
def check(exercise: str, file: Path | None, output_format: str, report_path: Path | None,
          plot_path: Path | None, html_path: Path | None, device: str, timeout: float, memory: int) -> None:
    from grader.course.submission import SubmissionNotFound
    from grader.grading import pipeline as grading

    outputs = [p for p in (report_path, plot_path, html_path) if p is not None]
    for output in outputs:
        _check_writable(output)
    limits = grading.Limits(timeout, memory)
    worker = grading.start_worker(exercise, device)  # first: its torch import overlaps our own start-up
    path = None
    try:
        path = _default_file(exercise, file)
        report = grading.grade(exercise, path, device=device, limits=limits, worker=worker)
    except (SubmissionNotFound, grading.DeviceUnavailable) as exc:
        raise click.UsageError(str(exc)) from None
    except click.UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the grader's own failure: a report that says so, exit 3
        report = grading.failure_report(exercise, path or Path(f"{exercise}.py"), _one_line(exc), limits)
    finally:
        worker.close()
    try:
        _emit(report, output_format, report_path, plot_path, html_path)
    except OSError as exc:
        raise click.UsageError(f"cannot write {exc.filename or 'an output file'}: {exc.strerror or exc}") from None
    if report.status == "grader-failure":
        from grader.model import sanitize

        click.echo(f"Error: {sanitize.text(' '.join(str(report.error).split()))}", err=True)
        sys.exit(3)
    sys.exit(0 if report.full_marks else 1)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _check_writable(path: Path) -> None:
    """An output path that cannot be written is a usage error, found before grading rather than after."""
    if path.is_dir():
        raise click.UsageError(f"{path} is a directory; give a file name.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise click.UsageError(f"cannot write {path}: {parent} is a file, not a directory.")
            break


def _default_file(exercise: str, file: Path | None) -> Path:
    if file is not None:
        return file
    from grader.course.submission import find

    found = find(Path("."), exercise)
    if found is not None:
        return found
    raise click.UsageError(f"no {exercise}.py or {exercise}.ipynb here; pass a FILE or run `grade init {exercise}`.")


def _emit(report: Any, output_format: str, report_path: Path | None, plot_path: Path | None,
          html_path: Path | None) -> None:
    from grader.course import hints
    from grader.formats import human
    from grader.model.report import to_json

    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(to_json(report), "utf-8")
    notes = []
    if plot_path:
        notes.append(_optional_output("plot", lambda: _plot(report, plot_path)))
    if html_path:
        notes.append(_optional_output("html", lambda: _html(report, html_path)))
    if output_format == "json":
        click.echo(to_json(report))
    else:
        click.echo(human.render(report, hint_count=len(hints.load(report.exercise))), nl=False)
    for note in filter(None, notes):
        click.echo(note, err=True)


def _plot(report: Any, path: Path) -> None:
    from grader.formats import plot

    plot.write_plot(report, path)


def _html(report: Any, path: Path) -> None:
    from grader.formats import html

    html.write_html(report, path)


def _optional_output(what: str, write: Any) -> str | None:
    try:
        write()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]  # matplotlib.figure → matplotlib, the package to install
        return f"note: {what} not written: {missing} is not installed (pip install 'dl-grader[plot]')."
    return None


@main.command(help="Show the next hint for EX (it remembers where you are).")
@click.argument("exercise", type=EXERCISE)
@click.option("--all", "show_all", is_flag=True, help="Show every hint.")
@click.option("--reset", is_flag=True, help="Start again from the first hint.")
@click.option("--statement", is_flag=True, help="Show the exercise statement instead.")
@click.option("--number", "-n", type=click.IntRange(1), help="Show hint N (the one a diagnosis points to).")
def hint(exercise: str, show_all: bool, reset: bool, statement: bool, number: int | None) -> None:
    from grader.course import hints

    if statement:
        click.echo(hints.for_terminal(exercises.load(exercise).statement, _text_width()))
        return
    total = len(hints.load(exercise))
    if number is not None and total and number > total:
        raise click.UsageError(f"{exercise} has hints 1 to {total}; there is no hint {number}.")
    text = hints.next_hint_text(exercise, show_all=show_all, reset=reset, number=number)
    click.echo(hints.for_terminal(text, _text_width()))


def _text_width() -> int:
    import shutil

    return max(40, min(100, shutil.get_terminal_size((88, 24)).columns - 2))


@main.command(help="Print the report's JSON Schema.")
def schema() -> None:
    from grader.model.report import schema as report_schema

    click.echo(json.dumps(report_schema(), indent=2))


@main.command(help="Check JSON files for shape and meaning: grade reports (score within 0..max, the sum of the "
                   "checks, known statuses and codes), and the Gradescope and PrairieLearn results.json it writes.")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(reports: tuple[Path, ...]) -> None:
    from grader.lms.validate import problems

    failed = 0
    for path in reports:
        try:
            kind, errors = problems(json.loads(path.read_text("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            kind, errors = None, [f"not JSON: {exc}"]
        what = f" ({kind})" if kind else ""
        if errors:
            failed += 1
            click.echo(f"{path}: INVALID{what}")
            for error in errors[:20]:
                click.echo(f"  {error}")
        else:
            click.echo(f"{path}: valid{what}")
    sys.exit(1 if failed else 0)


@main.command(help="(instructors) Grade DIR/<student>/<EX>.py|.ipynb for every student: OUT/<student>/<EX>.json, "
                   "OUT/gradebook.csv (+ canvas.csv, moodle.csv) and OUT/summary.json. Re-running grades only "
                   "what changed.")
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where reports go.")
@click.option("--exercise", "exercise_ids", type=EXERCISE, multiple=True,
              help="Only this exercise (repeatable); default: every exercise anyone submitted.")
@click.option("--jobs", type=click.IntRange(1), default=None, help="Parallel workers [default: number of cores].")
@click.option("--force", is_flag=True, help="Regrade even the submissions whose report is up to date.")
@click.option("--require-sandbox", is_flag=True, help="Refuse to run unless the namespace sandbox tier is available "
                                                        "(with --scheduler: on every Dask worker).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Grade on a Dask cluster, e.g. tcp://host:8786 (needs the `dask` extra).")
@click.option("--layout", type=click.Choice(layouts.LAYOUTS), default="auto", show_default=True,
              help="How DIR is laid out: DIR/<student>/<EX>.py, or an LMS export.")
@click.option("--feedback", is_flag=True,
              help="Also write each student's page (OUT/<student>/<EX>.html) and the class page OUT/class.html.")
@click.option("--feedback-hidden", type=click.Choice(["outcome", "full"]), default="outcome", show_default=True,
              help="Hidden checks on the student pages: their outcome only, or everything.")
@click.option("--similarity", "with_similarity", is_flag=True,
              help="Also report suspiciously alike pairs per exercise (needs the similarity extra).")
@sandbox_options
def batch(directory: Path, out: Path, exercise_ids: tuple[str, ...], jobs: int | None, force: bool,
          require_sandbox: bool, scheduler: str | None, layout: str, feedback: bool, feedback_hidden: str,
          with_similarity: bool, device: str, timeout: float, memory: int) -> None:
    import dataclasses

    from grader.classroom import batch as batching
    from grader.execution.executor import ExecutorGone
    from grader.grading import pipeline as grading

    if scheduler:
        refused = _dask_refusal()
        _quiet_dask_logs()
    elif require_sandbox:
        _require_namespace_tier()  # with a scheduler, each worker's tier is checked instead
    if with_similarity:
        _similarity_available()
    options = batching.Options(device=device, limits=grading.Limits(timeout, memory), force=force,
                               sandbox="namespaces" if require_sandbox else "auto", layout=layout,
                               scheduler=scheduler)
    if jobs or scheduler:
        options = dataclasses.replace(options, jobs=jobs or 0)  # 0: as many as the cluster's threads
    progress = _BatchProgress()
    try:
        with batching.sigterm_as_interrupt():
            result = batching.run(directory, out, exercise_ids, options, progress.start, progress.advance)
    except (batching.BatchError, grading.DeviceUnavailable) as exc:
        raise click.UsageError(_one_line(exc)) from None
    except ExecutorGone as exc:
        raise GraderFailure(f"{_one_line(exc).rstrip('.')}. Reports finished so far are kept; run the same command "
                            "again to grade the rest.") from None
    except Exception as exc:
        if scheduler and isinstance(exc, refused):
            raise click.UsageError(_one_line(exc)) from None
        raise
    finally:
        progress.close()
    click.echo(batching.render_summary(result.summary), nl=False)
    shown = sanitize.name(str(out))
    gradebook = sanitize.name(str(out / "gradebook.csv"))
    click.echo(f"Reports in {shown}/<student>/; gradebook: {gradebook}")
    if not result.interrupted_by:
        _after_batch(out, result.summary, feedback, feedback_hidden, with_similarity)
    if result.interrupted_by:
        sys.exit(143 if result.interrupted_by == "SIGTERM" else 130)


def _one_line(exc: BaseException) -> str:
    """An error's message for the terminal: one line, through the sanitiser (it may quote a file's name)."""
    return sanitize.text(" ".join(str(exc).split()))


def _similarity_available() -> None:
    from grader.classroom import similarity

    try:
        similarity._copydetect()
    except similarity.SimilarityUnavailable as exc:
        raise click.UsageError(str(exc)) from None


def _after_batch(out: Path, summary: dict[str, Any], feedback: bool, hidden: str, with_similarity: bool) -> None:
    from grader.classroom import similarity

    result = None
    if with_similarity:
        result = similarity.analyse(out)
        click.echo(sanitize.text(similarity.render(result)), nl=False)
    if feedback:
        from grader.classroom import classpage

        if result is None:
            result = _read_json(out / similarity.RESULT_FILE)
        pages = classpage.write_student_pages(out, hidden)
        page = classpage.write_class_page(out, summary, result)
        click.echo(f"Feedback: {len(pages)} student page(s) written beside the reports; class page: {page}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


@main.command(help="(instructors) Report suspiciously alike submissions per exercise among the reports in OUT "
                   "(OUT/similarity.json; with --feedback's class page, a side-by-side view).")
@click.argument("out", metavar="OUT", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Share of either file's code found in the other that flags a pair "
                   f"[default: {alike.THRESHOLD:g}].")
def similarity(out: Path, threshold: float | None) -> None:
    _similarity_available()
    result = alike.analyse(out, threshold if threshold is not None else alike.THRESHOLD)
    click.echo(alike.render(result), nl=False)
    summary = _read_json(out / "summary.json")
    if isinstance(summary, dict) and (out / "class.html").exists():
        from grader.classroom import classpage

        classpage.write_class_page(out, summary, result)
        click.echo(f"Class page updated: {out / 'class.html'}")


@main.command(help="(in Gradescope's container) Grade /autograder/submission into /autograder/results/results.json.")
@click.argument("exercise", type=EXERCISE, required=False)
@click.option("--submission", "submission_dir", type=click.Path(file_okay=False, path_type=Path),
              default=library_default(lms.gradescope_entry, "submission_dir"), show_default=True)
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              default=library_default(lms.gradescope_entry, "results_path"), show_default=True)
@click.option("--timeout", type=click.FloatRange(0.5), default=DEFAULT_TIMEOUT_S, show_default=True)
def gradescope(exercise: str | None, submission_dir: Path, results_path: Path, timeout: float) -> None:
    from grader.grading import pipeline as grading
    from grader.lms import autograder as lms

    data, status = lms.gradescope_entry(exercise, submission_dir, results_path, grading.Limits(timeout))
    _lms_done(data["score"], results_path, status)


def _lms_done(score: float, results_path: Path, status: str) -> None:
    click.echo(f"score {score:g}; results written to {results_path}")
    if status == "grader-failure":
        click.echo("Error: the grader itself failed; the results file says so.", err=True)
        sys.exit(3)
    if status == lms.HIDDEN_UNPROTECTED:
        click.echo("Error: nothing was graded: the sandbox here cannot keep the hidden checks from submissions "
                   "(run it as root, or where user namespaces are allowed); the results file says so.", err=True)
        sys.exit(3)


@main.command(help="(in PrairieLearn's external grader) Grade /grade/student into /grade/results/results.json.")
@click.argument("exercise", type=EXERCISE, required=False)
@click.option("--submission", "submission_dir", type=click.Path(file_okay=False, path_type=Path),
              default=library_default(lms.prairielearn_entry, "submission_dir"), show_default=True)
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              default=library_default(lms.prairielearn_entry, "results_path"), show_default=True)
@click.option("--timeout", type=click.FloatRange(0.5), default=DEFAULT_TIMEOUT_S, show_default=True)
@click.option("--reveal-hidden", is_flag=True, help="Show hidden checks' messages too.")
def prairielearn(exercise: str | None, submission_dir: Path, results_path: Path, timeout: float,
                 reveal_hidden: bool) -> None:
    from grader.grading import pipeline as grading
    from grader.lms import autograder as lms

    data, status = lms.prairielearn_entry(exercise, submission_dir, results_path, grading.Limits(timeout),
                                          reveal_hidden)
    _lms_done(data["score"], results_path, status)


@main.command("gradescope-package", help="(instructors) Build a Gradescope autograder zip for EX: setup.sh and "
                                         "run_autograder installing this grader, pinned, with the hidden checks.")
@click.argument("exercise", type=EXERCISE)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=library_default(packaging.gradescope_package, "out"), show_default=True)
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The grader's wheel to ship [default: built from this checkout].")
@click.option("--timeout", type=click.FloatRange(0.5), default=DEFAULT_TIMEOUT_S, show_default=True)
def gradescope_package(exercise: str, out: Path, wheel: Path | None, timeout: float) -> None:
    try:
        path = packaging.gradescope_package(exercise, out, wheel, timeout)
    except packaging.PackagingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}: upload it under the assignment's Configure Autograder → Zip file upload.")


@main.command("prairielearn-package", help="(instructors) Write a PrairieLearn question folder for EX: info.json "
                                           "(external grading), question.html, the stub, tests/ with the grader.")
@click.argument("exercise", type=EXERCISE)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The grader's wheel to ship [default: built from this checkout].")
@click.option("--image", default=None, help="The Docker image PrairieLearn grades in (built from tests/Dockerfile).")
@click.option("--timeout", type=click.FloatRange(0.5), default=DEFAULT_TIMEOUT_S, show_default=True)
def prairielearn_package(exercise: str, out: Path, wheel: Path | None, image: str | None, timeout: float) -> None:
    try:
        path = packaging.prairielearn_package(exercise, out, wheel, image or packaging.PL_IMAGE, timeout)
    except packaging.PackagingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}/: copy it into your course's questions/; build and push the image from "
               f"{path}/tests/Dockerfile.")


class GraderFailure(click.ClickException):
    """The grader itself could not go on (its cluster is gone): one line on stderr, exit status 3."""

    exit_code = 3

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def _dask_refusal() -> type[Exception]:
    """Check that the `dask` extra is installed; returns the error a cluster that refuses raises."""
    try:
        from grader.execution.cluster import ClusterRefused
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"--scheduler needs the `dask` extra ({exc.name} is missing): "
                               "pip install 'dl-grader[dask]'") from None
    return ClusterRefused


def _quiet_dask_logs() -> None:
    """Dask's client logs a traceback when its scheduler goes away; the batch says it in one line instead."""
    import logging

    import distributed  # noqa: F401 - its logging configuration first, then ours over it

    for name in ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _require_namespace_tier() -> None:
    try:
        from grader.sandbox import doctor
    except ImportError:
        raise click.UsageError("--require-sandbox: this grader cannot check its sandbox tier yet.") from None
    try:
        doctor.require_namespace_tier()
    except Exception as exc:  # noqa: BLE001 - its one-line message is the answer
        raise click.UsageError(f"--require-sandbox: {exc}") from None


class _BatchProgress:
    """done/total, rate and an honest ETA on stderr, redrawn every second; silent off a terminal.

    The ETA is the time per finished submission so far times what is left, recomputed as the clock runs:
    while one submission hangs for 60 s nothing finishes, so the time per submission, and the ETA, grow.
    Before the first report there is no estimate, and the line says so instead of printing 00:00:00.
    """

    def __init__(self, stream: Any = None) -> None:
        import threading

        self.stream = stream if stream is not None else sys.stderr
        self.total = 0
        self.done = 0
        self.started = self.last_done = 0.0
        self.active = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Any = None

    def start(self, to_grade: int, skipped: int) -> None:
        import threading
        import time

        if skipped:
            click.echo(f"{skipped} submissions unchanged since their report: skipped (--force regrades).", err=True)
        self.total = to_grade
        self.started = self.last_done = time.monotonic()
        if to_grade and self.stream.isatty():
            self.active = True
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def advance(self, done: Any) -> None:
        import time

        with self._lock:
            self.done += 1
            self.last_done = time.monotonic()
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self) -> None:
        import time

        if not self.active:
            return
        with self._lock:  # the ticker and the batch's own thread both draw: one line at a time
            line = sanitize.text(progress_line(self.done, self.total, time.monotonic() - self.started,
                                               time.monotonic() - self.last_done))
            self.stream.write("\r" + line.ljust(79))
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.active:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.active = False


def progress_line(done: int, total: int, elapsed: float, since_last: float) -> str:
    """`grading 12/100  1.3/s  ETA 00:01:08`; the ETA grows while nothing finishes."""
    rate = f"{done / elapsed:.1f}/s" if done and elapsed > 0 else "-/s"
    left = total - done
    if left <= 0:
        eta = "done"
    elif not done:
        eta = f"ETA: after the first report ({_clock(elapsed)} so far)"
    else:
        eta = "ETA " + _clock(elapsed / done * left)
    waiting = f"  (no report for {since_last:.0f} s)" if done < total and since_last >= 10 else ""
    return f"grading {done}/{total}  {rate}  {eta}{waiting}"


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@main.command(help="Show the sandbox tier this machine reaches and what each defence relies on.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--sandbox", type=click.Choice(SANDBOX_CHOICES),
              default=library_default(sandbox_doctor.examine, "sandbox"),
              show_default=True, help="Examine this tier instead of the strongest available.")
def doctor(as_json: bool, sandbox: str) -> None:
    found = sandbox_doctor.examine(sandbox)
    click.echo(json.dumps(found, indent=2) if as_json else sandbox_doctor.render(found), nl=as_json)


@main.command(help="(instructors) Record reference data from solutions/ for EX, or for all exercises.")
@click.argument("exercise_ids", nargs=-1, type=EXERCISE)
def record(exercise_ids: tuple[str, ...]) -> None:
    from grader.grading import record as recording

    for exercise_id in exercise_ids or exercises.exercise_ids():
        try:
            for path in recording.record(exercise_id):
                click.echo(f"{exercise_id}: wrote {path}")
        except recording.RecordingError as exc:
            raise click.ClickException(str(exc)) from None


# ---- the grading service (needs the `service` extra)

def _service_modules() -> Any:
    try:
        from grader.service import app as service_app
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"the grading service needs the `service` extra ({exc.name} is missing): "
                               "pip install 'dl-grader[service]'") from None
    return service_app


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
    service_app = _service_modules()
    if scheduler:  # refuse an unreachable or unfit cluster now, in one line; the runner connects on its own
        checked = _dask_executor(scheduler, jobs)
        jobs = checked.capacity
        checked.close(wait=False)
    import uvicorn

    from grader.classroom.batch import default_jobs

    service_logging()
    if public_url is None:
        shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        public_url = f"http://{shown}:{port}"
    config = service_app.Config.from_environment(db_url=db_url, jobs=jobs or default_jobs(), scheduler=scheduler,
                                                 public_url=public_url)
    try:
        app = service_app.create_app(config)  # migrates the database now: a bad --db fails here, in one line
    except service_app.ConfigurationError as exc:
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
    return socket.create_server((host, port), family=family, backlog=2048)


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
    service_app = _service_modules()
    if role == "student" and not student:
        raise click.UsageError("a student token needs --student ID.")
    if student and not service_app.STUDENT_ID.fullmatch(student):
        raise click.UsageError("a student id is 1-128 letters, digits, '.', '_', '@' or '-'.")
    try:
        click.echo(service_app.add_token(db_url, role, student))
    except service_app.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


@token.command("list", help="The tokens, one a line: id, role, student, created, revoked (never the token itself).")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def token_list(db_url: str | None) -> None:
    import datetime

    service_app = _service_modules()

    def when(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    try:
        rows = service_app.list_tokens(db_url)
    except service_app.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    for row in rows:
        revoked = f"revoked {when(row.revoked_at)}" if row.revoked_at else "active"
        click.echo(f"{row.id}\t{row.role}\t{row.student or '-'}\t{when(row.created_at)}\t{revoked}")


@token.command("revoke", help="Revoke a token, given as itself or by its id from `grade token list`; a running "
                              "service stops taking it within a minute. Its submissions and reports stay.")
@click.argument("token_or_id")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def token_revoke(token_or_id: str, db_url: str | None) -> None:
    service_app = _service_modules()
    try:
        row = service_app.revoke_token(db_url, token_or_id.strip())
    except service_app.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if row is None:
        raise click.UsageError("no such token in this database (give the token itself, or its id from "
                               "`grade token list`).")
    click.echo(f"revoked token {row.id} ({row.role}{', ' + row.student if row.student else ''})")


if __name__ == "__main__":
    main()
