"""The `grade` command: click commands only, each calling the library and formatting its answer."""

from grader.cli.main import main

__all__ = ["main"]
