"""The `grade` group itself and what its commands share: the exercise argument, the sandbox options, one-line errors.

Every command module (main.py, lms.py, service.py) registers on `main` here; cli/__init__.py imports them all."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import click

from grader.course import exercises
from grader.grading import pipeline as grading
from grader.grading.pipeline import DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S, DEVICES
from grader.model import sanitize

SUBCOMMANDS_HELP = "Run `grade EX [FILE]` to grade a submission, e.g. `grade ex03`."


def library_default(function: Callable[..., Any], parameter: str) -> Any:
    """The library function's own keyword default, so that an option's default is written once."""
    return inspect.signature(function).parameters[parameter].default


class ExerciseType(click.ParamType):
    """An exercise id that exists in this course."""

    name = "exercise"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        known = exercises.exercise_ids()
        broken = exercises.broken() if value not in known else {}
        if value in broken:  # named with its problem, not as unknown
            self.fail(f"exercise {value} is broken: {broken[value]}", param, ctx)
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


@click.group(cls=GradeGroup, help="Grade gradient-descent and autograd exercises. " + SUBCOMMANDS_HELP)
@click.version_option(package_name="dl-grader")
def main() -> None:
    pass


def _one_line(exc: BaseException) -> str:
    """An error's message for the terminal: one line, through the sanitiser (it may quote a file's name)."""
    return sanitize.text(" ".join(str(exc).split()))


class GraderFailure(click.ClickException):
    """The grader itself could not go on (its cluster is gone): one line on stderr, exit status 3."""

    exit_code = 3

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)
