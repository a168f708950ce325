"""A report rendered for a reader: terminal table, HTML page, plot, Gradescope, PrairieLearn.

OUTPUT_FORMATS is the registry of what `grade EX FILE --format NAME` prints: a name and the function, named
as "module:function" so that only the chosen one is imported. A new format is its module (a function that
takes a Report and returns the text, ending in a newline) and one line here; the `--format` choices read it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.model.report import Report

OUTPUT_FORMATS: dict[str, str] = {
    "human": "grader.formats.human:for_terminal",  # the table a student reads (the default)
    "json": "grader.model.report:to_json_line",  # the report itself, and nothing else on stdout
}


def renderer(name: str) -> Callable[[Report], str]:
    """The function that renders a report in the registered format `name` (KeyError for another name)."""
    module, _, function = OUTPUT_FORMATS[name].partition(":")
    rendered: Callable[[Report], str] = getattr(import_module(module), function)
    return rendered
