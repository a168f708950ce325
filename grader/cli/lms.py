"""The LMS commands: the autograder entry points run inside Gradescope and PrairieLearn, and the packages to upload."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grader.cli.group import (
    EXERCISE,
    library_default,
    main,
)
from grader.grading.pipeline import DEFAULT_TIMEOUT_S
from grader.lms import autograder as lms, packages as packaging
from grader.model.report import RunStatus


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
    if status == RunStatus.GRADER_FAILURE:
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
