"""The authoring commands: `grade mutants EX` and `grade check-exercise EX`, for whoever writes an exercise."""

from __future__ import annotations

import json
import sys

import click

from grader.authoring import mutants as authoring_mutants, soundness as authoring_soundness
from grader.cli.group import EXERCISE, _one_line, library_default, main
from grader.course import exercises


@main.command(help="(instructors) Grade one-mistake mutants of EX's reference solution: which mistakes the checks "
                   "catch and name. Exit 1 when a mutant that changes a result is not caught or gets a false code.")
@click.argument("exercise", type=EXERCISE)
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human")
@click.option("--jobs", type=click.IntRange(1), default=library_default(authoring_mutants.analyse, "jobs"),
              show_default=True, help="Parallel warm workers.")
def mutants(exercise: str, output_format: str, jobs: int) -> None:
    try:
        analysis = authoring_mutants.analyse(exercise, jobs=jobs)
    except authoring_mutants.AnalysisError as exc:
        raise click.ClickException(_one_line(exc)) from None
    if output_format == "json":
        click.echo(json.dumps(analysis.as_dict(), indent=2))
    else:
        click.echo(authoring_mutants.render(analysis), nl=False)
    sys.exit(0 if analysis.sound else 1)


@main.command("check-exercise", help="(authors) Is EX sound? Its spec against the schema, its hints, its references "
                                     "recorded and current, the solution at full marks, the stub not attempted, and "
                                     "its mutation analysis. Exit 0 only when sound.")
@click.argument("exercise", type=click.STRING)
@click.option("--jobs", type=click.IntRange(1), default=library_default(authoring_soundness.check, "jobs"),
              show_default=True, help="Parallel warm workers for the mutants.")
def check_exercise(exercise: str, jobs: int) -> None:
    if exercise not in exercises.folder_ids():  # a broken exercise is what this command is for: not EXERCISE
        raise click.UsageError(f"no exercise {exercise!r} (a folder exNN/ with a spec.toml) in "
                               f"{exercises.course_root()}")
    sound = True
    for step in authoring_soundness.check(exercise, jobs=jobs):
        sound = sound and step.ok
        click.echo(authoring_soundness.render(exercise, step))
    click.echo(f"{exercise}: {'sound' if sound else 'NOT SOUND'}")
    sys.exit(0 if sound else 1)
