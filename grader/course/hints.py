"""Hints: the next one for an exercise (remembering where the student is), and which hint fits a diagnosis.

An exercise's hints.md holds three or more hints separated by `---` lines, from a nudge to nearly the
answer. A hint may start with `<!-- helps: code, code -->` naming the diagnosis codes it helps with; the
tag is for the grader and is never shown. Progress lives in a small JSON state file; a corrupt, missing
or unwritable one never stops a hint from being shown.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from grader.course import exercises
from grader.model.report import Report

TAG = re.compile(r"<!--\s*helps:\s*(?P<codes>[^>]*?)\s*-->\s*", re.IGNORECASE)
SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Hint:
    number: int  # 1-based, as the student sees it
    text: str  # what is shown: the tag removed
    helps: tuple[str, ...]  # diagnosis codes this hint helps with


def parse(markdown: str) -> list[Hint]:
    """The hints in a hints.md text, tags stripped from the text and kept in `helps`."""
    hints = []
    for part in SEPARATOR.split(markdown):
        codes: list[str] = []
        for match in TAG.finditer(part):
            codes += [c.strip() for c in match.group("codes").split(",") if c.strip()]
        text = TAG.sub("", part).strip()
        if text:
            hints.append(Hint(len(hints) + 1, text, tuple(codes)))
    return hints


def load(exercise_id: str) -> list[Hint]:
    """The exercise's hints, in order (empty when it has none). hints.md is parsed once per version of the
    file, however many reports and formats ask."""
    path = exercises.course_root() / exercise_id / "hints.md"
    try:
        stat = path.stat()
        return list(_parsed(str(path), stat.st_mtime_ns, stat.st_size))
    except (OSError, UnicodeDecodeError):
        return []


@functools.lru_cache(maxsize=64)
def _parsed(path: str, mtime_ns: int, size: int) -> tuple[Hint, ...]:
    return tuple(parse(Path(path).read_text("utf-8")))


def state_file() -> Path:
    """Where hint progress is kept: $GRADER_STATE, else ./.grade-hints.json next to the student's work."""
    return Path(os.environ.get("GRADER_STATE", ".grade-hints.json"))


def load_state() -> dict[str, int]:
    """How many hints each exercise has shown; anything unreadable counts as nothing shown."""
    try:
        data = json.loads(state_file().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    state = {}
    for key, value in data.items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            state[str(key)] = value
    return state


def save_state(state: dict[str, int]) -> bool:
    """Write the progress atomically (an interrupted write never leaves a corrupt file); False if it failed."""
    path = state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # e.g. GRADER_STATE=~/.cache/grade/hints.json
        fd, temporary = tempfile.mkstemp(prefix=".grade-hints.", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
        os.replace(temporary, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False


def _format(hint: Hint, total: int) -> str:
    return f"Hint {hint.number}/{total}:\n{hint.text}"


def next_hint_text(exercise_id: str, show_all: bool = False, reset: bool = False,
                   number: int | None = None) -> str:
    """What `grade hint EX` prints: the next hint (or hint `number`, or all of them), advancing progress."""
    hints = load(exercise_id)
    if not hints:
        return f"No hints for {exercise_id}."
    state = load_state()
    if reset:
        state.pop(exercise_id, None)
    if show_all:
        if reset:
            save_state(state)
        return "\n\n".join(_format(h, len(hints)) for h in hints)
    if number is not None:
        if not 1 <= number <= len(hints):
            return f"{exercise_id} has hints 1 to {len(hints)}; there is no hint {number}."
        index = number - 1
    else:
        index = min(state.get(exercise_id, 0), len(hints) - 1)
    state[exercise_id] = max(state.get(exercise_id, 0), index + 1)
    text = _format(hints[index], len(hints))
    if index + 1 == len(hints):
        text += "\n\n(That was the last hint; `--all` shows them all, `--reset` starts again.)"
    if not save_state(state):
        text += f"\n\n(note: could not save your progress to {state_file()}; the next hint may repeat this one.)"
    return text


def hint_for(exercise_id: str, diagnosis: str) -> int | None:
    """The number of the first hint tagged with the diagnosis code (or, untagged, naming it in words)."""
    hints = load(exercise_id)
    tagged = next((h.number for h in hints if diagnosis in h.helps), None)
    if tagged is not None:
        return tagged
    words = diagnosis.replace("-", " ")
    return next((h.number for h in hints if not h.helps and words in h.text.lower()), None)


def annotate(report: Report) -> Report:
    """The report with each diagnosed check pointing at the hint that helps (CheckResult.hint)."""
    checks = tuple(
        replace(c, hint=hint_for(report.exercise, c.diagnosis)) if c.diagnosis and c.hint is None else c
        for c in report.checks
    )
    return report.with_checks(checks)


FENCE = re.compile(r"^\s*```")
BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
HEADING = re.compile(r"^#{1,6}\s+(.*)$")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def for_terminal(markdown: str, width: int = 88) -> str:
    """Hint or statement Markdown as plain terminal text: paragraphs wrapped to `width`, emphasis markers and
    backticks dropped (the words stay), headings underlined, bullets as "•", code blocks indented and
    never wrapped, links as "text (url)"."""
    import textwrap

    out: list[str] = []
    paragraph: list[str] = []
    quoted: list[bool] = [False]  # the paragraph being gathered is a "> " block quote
    in_code = False

    def flush() -> None:
        if paragraph:
            prefix = "  │ " if quoted[0] else ""
            out.extend(textwrap.wrap(_inline(" ".join(paragraph)), width, initial_indent=prefix,
                                     subsequent_indent=prefix, break_on_hyphens=False) or [""])
            paragraph.clear()

    for line in markdown.splitlines():
        if FENCE.match(line):
            flush()
            in_code = not in_code
            continue
        if in_code:
            out.append("    " + line)
            continue
        if not line.strip():
            flush()
            if out and out[-1] != "":
                out.append("")
            continue
        heading, bullet = HEADING.match(line), BULLET.match(line)
        if heading:
            flush()
            title = _inline(heading.group(1))
            out += [title, "-" * min(len(title), width)]
        elif bullet:
            flush()
            indent = " " * len(bullet.group(1))
            out += textwrap.wrap(_inline(bullet.group(2)), width, initial_indent=f"{indent}  • ",
                                 subsequent_indent=f"{indent}    ", break_on_hyphens=False)
        else:
            quote = line.lstrip().startswith(">")
            if quote != quoted[0]:
                flush()
                quoted[0] = quote
            paragraph.append(line.strip().lstrip(">").strip() if quote else line.strip())
    flush()
    return "\n".join(out).strip("\n")


def _inline(text: str) -> str:
    text = LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    return text.replace("`", "")
