"""Reading a submission file into cells of source text, in the trusted parent, without executing it.

Problems a student can fix (empty, binary, not UTF-8, syntax error, broken notebook) become an
`Unreadable` with a message naming the line or cell; they are graded zero with a report, never raised.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from grader.report import Submission

MAX_SUBMISSION_BYTES = 2 * 1024 * 1024
BOM = b"\xef\xbb\xbf"


class SubmissionNotFound(FileNotFoundError):
    """The path does not exist or is not a file: a usage error, not a graded zero."""


@dataclass(frozen=True)
class Cell:
    label: str  # what tracebacks call it: "ex03.py" or "cell 4"
    source: str


@dataclass(frozen=True)
class Loaded:
    submission: Submission
    cells: tuple[Cell, ...]
    problem: str | None = None  # set when the file cannot be graded at all


def read(path: Path, exercise_id: str) -> Loaded:
    path = Path(path)
    if not path.exists():
        raise SubmissionNotFound(f"no such file: {path}")
    if not path.is_file():
        raise SubmissionNotFound(f"not a file: {path}")
    data = path.read_bytes()[: MAX_SUBMISSION_BYTES + 1]
    kind = "ipynb" if path.suffix == ".ipynb" else "py"
    submission = Submission(path=str(path), sha256=hashlib.sha256(data).hexdigest(), kind=kind, size=len(data))
    problem = _text_problem(data, exercise_id)
    if problem:
        return Loaded(submission, (), problem)
    text = data.removeprefix(BOM).decode("utf-8")
    if kind == "ipynb":
        cells, problem = notebook_cells(text)
    else:
        cells = (Cell(f"{exercise_id}.py", text),)
    if problem is None:
        problem = syntax_problem(cells)
    return Loaded(submission, cells, problem)


def _text_problem(data: bytes, exercise_id: str) -> str | None:
    if len(data) > MAX_SUBMISSION_BYTES:
        return f"the file is larger than {MAX_SUBMISSION_BYTES // 1024} KiB; submit only your source code."
    if not data.removeprefix(BOM).strip():
        return f"the file is empty. Start from the stub: `grade init {exercise_id}`."
    if b"\x00" in data:
        return "the file is binary, not Python source. Did you submit the right file?"
    try:
        data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return (f"the file is not UTF-8 text (invalid byte at line {line}). Save it as UTF-8 in your "
                "editor and submit again.")
    return None


def syntax_problem(cells: tuple[Cell, ...]) -> str | None:
    for cell in cells:
        try:
            compile(cell.source, cell.label, "exec", dont_inherit=True)
        except SyntaxError as exc:
            line = (exc.text or "").rstrip("\n")
            pointer = f"\n    {line}" if line.strip() else ""
            return f"SyntaxError in {cell.label}, line {exc.lineno}: {exc.msg}{pointer}"
        except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
            return f"{cell.label} cannot be compiled: {exc}"
    return None


def notebook_cells(text: str) -> tuple[tuple[Cell, ...], str | None]:
    """The code cells of a notebook, in order, with IPython-only lines turned into comments."""
    import nbformat

    try:
        notebook = nbformat.reads(text, as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError, ValueError, KeyError, TypeError) as exc:
        return (), f"the notebook cannot be read ({str(exc)[:200]}). Is it a valid .ipynb file?"
    cells = []
    for index, cell in enumerate(notebook.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        cells.append(Cell(f"cell {index}", strip_magics(str(cell.get("source", "")))))
    if not cells:
        return (), "the notebook has no code cells."
    return tuple(cells), None


def strip_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (`%matplotlib inline`, `!pip install ...`).

    Lines keep their numbers, so an error message's line still points at the student's cell line.
    A `%%` cell magic comments out the whole cell: its body is not Python.
    """
    lines = source.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        return "\n".join("# " + line for line in lines)
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}pass  # {stripped}" if indent else f"# {stripped}")
        else:
            out.append(line)
    return "\n".join(out)
