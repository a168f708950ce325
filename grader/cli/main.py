"""The `grade` command: click commands only; every one of them calls the library and formats its answer.

`grade EX [FILE]` grades; the other verbs are subcommands. Exit status: 0 full marks, 1 graded below full
marks, 2 usage error (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from grader.classroom import layouts, similarity as alike
from grader.cli import authoring, lms, lti, service  # noqa: F401 - their commands join the `grade` group on import
from grader.cli.cluster import _dask_refusal, _quiet_dask_logs
from grader.cli.group import (
    EXERCISE,
    GraderFailure,
    _one_line,
    library_default,
    main,
    sandbox_options,
)
from grader.cli.progress import _BatchProgress
from grader.course import exercises
from grader.formats import OUTPUT_FORMATS
from grader.model import sanitize
from grader.model.report import RunStatus
from grader.sandbox import doctor as sandbox_doctor
from grader.sandbox.client import SANDBOX_CHOICES


def _plot_suffix(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--plot writes the format its suffix names, so a .pdf is a PDF; any other suffix is refused."""
    from grader.formats.plot import FORMATS

    if value is not None and value.suffix.lower().lstrip(".") not in FORMATS:
        raise click.BadParameter(f"{value.name}: the plot is written as {', '.join('.' + f for f in FORMATS)}; "
                                 "name the file with one of these suffixes.", ctx, param)
    return value


@main.command("list", help="The exercises, one a line: id and title.")
def list_exercises() -> None:
    for exercise_id in exercises.exercise_ids():
        click.echo(f"{exercise_id}  {exercises.load(exercise_id).title}")
    for exercise_id, problem in exercises.broken().items():  # named, one line each; the others are listed
        click.echo(f"Error: exercise {exercise_id} is broken: {problem}", err=True)


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
@click.option("--format", "output_format", type=click.Choice(list(OUTPUT_FORMATS)), default="human")
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
    if report.status is RunStatus.GRADER_FAILURE:
        from grader.model import sanitize

        click.echo(f"Error: {sanitize.text(' '.join(str(report.error).split()))}", err=True)
        sys.exit(3)
    sys.exit(0 if report.full_marks else 1)


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
    from grader.course.submission import find_near

    near = find_near(Path("."), exercise)
    if near is not None:
        click.echo(f"{near[0].name}: {near[1]}", err=True)
        return near[0]
    from grader.course import filenames

    try:
        here = [p.name for p in Path(".").iterdir() if p.is_file() and filenames.split(p.name) is not None]
    except OSError:
        here = []
    found = f" {filenames.found_names(here)}" if here else ""
    raise click.UsageError(f"no {exercise}.py or {exercise}.ipynb here; pass a FILE or run `grade init {exercise}`."
                           f"{found}")


def _emit(report: Any, output_format: str, report_path: Path | None, plot_path: Path | None,
          html_path: Path | None) -> None:
    from grader.formats import renderer
    from grader.model.report import to_json

    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(to_json(report), "utf-8")
    notes = []
    if plot_path:
        notes.append(_optional_output("plot", lambda: _plot(report, plot_path)))
    if html_path:
        notes.append(_optional_output("html", lambda: _html(report, html_path)))
    click.echo(renderer(output_format)(report), nl=False)
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


def _require_namespace_tier() -> None:
    try:
        from grader.sandbox import doctor
    except ImportError:
        raise click.UsageError("--require-sandbox: this grader cannot check its sandbox tier yet.") from None
    try:
        doctor.require_namespace_tier()
    except Exception as exc:  # noqa: BLE001 - its one-line message is the answer
        raise click.UsageError(f"--require-sandbox: {exc}") from None


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

    failed = 0
    for exercise_id in exercise_ids or exercises.folder_ids():
        try:
            for path in recording.record(exercise_id):
                click.echo(f"{exercise_id}: wrote {path}")
        except (recording.RecordingError, exercises.ExerciseError) as exc:  # named; the others are recorded
            failed += 1
            click.echo(f"Error: {exercise_id}: not recorded: {_one_line(exc)}", err=True)
    sys.exit(1 if failed else 0)


# ---- the grading service (needs the `service` extra)


if __name__ == "__main__":
    main()
