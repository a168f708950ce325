"""What `check`, `hint` and `submit` return: an HTML form for Jupyter (the feedback inline), a text form elsewhere."""

from __future__ import annotations

import html
from typing import Any


class Result:
    """What `check` and `submit` return: its HTML form is the feedback inline, its text form the table."""

    def __init__(self, answer: dict[str, Any]):
        self.report: dict[str, Any] | None = answer.get("report")
        self.score: float = float(answer.get("score") or 0.0)
        self.max_score: float = float(answer.get("max_score") or 0.0)
        self.passed: bool = bool(answer.get("passed"))
        self.error: str | None = answer.get("error")
        self.summary: str = answer.get("summary") or self.error or ""
        self._text = answer.get("text") or (self.error or "") + "\n"
        self._html = answer.get("html") or one_line_html(self.error or "")

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text.rstrip("\n")

    __str__ = __repr__


class Text:
    """A hint or a summary: HTML in a notebook, plain text elsewhere."""

    def __init__(self, text: str, html: str):
        self._text, self._html = text, html

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text.rstrip("\n")


def one_line_html(line: str) -> str:
    return f'<div style="border-left: 4px solid #bf8700; padding: .3rem .8rem">{html.escape(line)}</div>'
