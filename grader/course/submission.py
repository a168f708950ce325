"""Reading a submission file into cells of source text, in the trusted parent, without executing it.

Problems a student can fix (empty, binary, not UTF-8, syntax error, broken notebook) become an
`Unreadable` with a message naming the line or cell; they are graded zero with a report, never raised.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from grader.model.report import Submission

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
    problem_status: str | None = None  # the report's status for that problem: "unreadable" or "syntax-error"


SUFFIXES = (".py", ".ipynb")


def find(folder: Path, exercise_id: str) -> Path | None:
    """`EX.py`, else `EX.ipynb` in `folder` (a broken link still counts, and then fails as unreadable)."""
    for suffix in SUFFIXES:
        candidate = Path(folder) / f"{exercise_id}{suffix}"
        if candidate.is_symlink() or candidate.exists():
            return candidate
    return None


def find_near(folder: Path, exercise_id: str) -> tuple[Path, str] | None:
    """No `EX.py` / `EX.ipynb` in `folder`: a near-miss name for it (`Ex03.py`, `ex03 (1).py`, `ex3.py`), and
    the note saying which file was taken."""
    from grader.course import filenames

    try:
        entries = sorted(Path(folder).iterdir(), key=lambda p: (p.suffix.lower() != ".py", p.name))
    except OSError:
        return None
    for entry in entries:
        taken = filenames.exercise_of(entry.name, [exercise_id])
        if taken is not None and entry.is_file():
            return entry, taken.note
    return None


def head(path: Path) -> bytes:
    """The bytes a submission is judged (and hashed) by: at most one byte past the size limit."""
    with Path(path).open("rb") as handle:
        return handle.read(MAX_SUBMISSION_BYTES + 1)


def file_sha256(path: Path) -> str:
    """The digest a report records for this file."""
    return hashlib.sha256(head(path)).hexdigest()


def read(path: Path, exercise_id: str) -> Loaded:
    path = Path(path)
    try:
        if not path.exists():
            raise SubmissionNotFound(f"no such file: {path}")
        if not path.is_file():
            raise SubmissionNotFound(f"not a file: {path}")
        data = head(path)
    except SubmissionNotFound:
        raise
    except OSError as exc:  # a name too long, a loop of links, no permission: nothing to grade
        raise SubmissionNotFound(f"cannot read {str(path)[:200]}: {exc.strerror or exc}") from None
    kind = "ipynb" if path.suffix == ".ipynb" else "py"
    submission = Submission(path=str(path), sha256=hashlib.sha256(data).hexdigest(), kind=kind, size=len(data))
    encoding = declared_encoding(data) if kind == "py" else "utf-8"
    problem = _text_problem(data, exercise_id, encoding)
    if problem:
        return Loaded(submission, (), problem, "unreadable")
    text = data.removeprefix(BOM).decode(encoding)
    if kind == "ipynb":
        cells, problem = notebook_cells(text)
        if problem:
            return Loaded(submission, (), problem, "unreadable")
    else:
        cells = (Cell(file_label(path, exercise_id), strip_ipython_calls(text)),)
        problem = syntax_problem(cells)  # a notebook's broken cell is skipped and reported, as Jupyter would
    return Loaded(submission, cells, problem, "syntax-error" if problem else None)


def file_label(path: Path, exercise_id: str) -> str:
    """What messages and tracebacks call a .py submission: its own file name (`syn.py`), so every line they
    quote is a line of that file; the exercise's name when the file's name is not plain printable text."""
    name = path.name
    if name.isprintable() and name.endswith(".py") and len(name) <= 100 and name.strip() == name and \
            name != "probe.py":  # the exercise's probe module is called so in tracebacks
        return name
    return f"{exercise_id}.py"


def declared_encoding(data: bytes) -> str:
    """The encoding a PEP 263 declaration (`# -*- coding: latin-1 -*-` on line 1 or 2) names, as Python
    itself reads it (tokenize.detect_encoding); UTF-8 without one, or with one Python would refuse."""
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data[:4096]).readline)
    except SyntaxError:  # an unknown codec or a BOM that contradicts the declaration
        return "utf-8"
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _text_problem(data: bytes, exercise_id: str, encoding: str = "utf-8") -> str | None:
    if len(data) > MAX_SUBMISSION_BYTES:
        return f"the file is larger than {MAX_SUBMISSION_BYTES // 1024} KiB; submit only your source code."
    if not data.removeprefix(BOM).strip():
        return f"the file is empty. Start from the stub: `grade init {exercise_id}`."
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # what Windows editors call "Unicode"
        return "the file is saved as UTF-16. Save it as UTF-8 in your editor and submit again."
    if b"\x00" in data:
        return "the file is binary, not Python source. Did you submit the right file?"
    try:
        data.removeprefix(BOM).decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        if encoding != "utf-8":
            return (f"the file is not {encoding} text as its coding line declares (invalid byte at line {line}). "
                    "Save it as UTF-8 in your editor (and remove the coding line) and submit again.")
        return (f"the file is not UTF-8 text (invalid byte at line {line}). Save it as UTF-8 in your "
                "editor and submit again.")
    return None


def syntax_problem(cells: tuple[Cell, ...]) -> str | None:
    for cell in cells:
        problem = compile_problem(cell.source, cell.label)
        if problem:
            return problem
    return None


def compile_problem(source: str, label: str) -> str | None:
    """Why `source` does not compile, for the student (None when it does), whatever the source holds.

    Compiling runs in the trusted parent, so every way it can fail is an answer here: a syntax error, a null
    byte, and the parser's and compiler's own limits (`- - - ... 1` 100,000 deep exhausts the parser's
    stack, a 200,000-term sum the compiler's recursion limit).
    """
    try:
        compile(source, label, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = str(exc.text or "").rstrip("\n")[:200]
        pointer = f"\n    {line}" if line.strip() else ""
        return f"SyntaxError in {label}, line {exc.lineno}: {exc.msg}{pointer}"
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        return f"{label} cannot be compiled: {exc}"
    except (RecursionError, MemoryError, OverflowError):
        return (f"SyntaxError in {label}: Python cannot compile it, an expression is nested too deeply or is "
                "far too long. Split it into smaller statements.")
    return None


def notebook_cells(text: str) -> tuple[tuple[Cell, ...], str | None]:
    """The code cells of a notebook, in order, as Python: IPython-only syntax is neutralised.

    Each cell is labelled "cell N", N counting every cell from the top (markdown too), as a student
    scrolling the notebook counts them; tracebacks and messages then say "cell 4, line 3".
    """
    import nbformat

    try:
        with warnings.catch_warnings():  # e.g. "missing cell id" from older Jupyter versions: not the student's concern
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many types for a broken file; all mean "unreadable"
        return (), f"the notebook cannot be read ({str(exc)[:200]}). Is it a valid .ipynb file?"
    raw_cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
    cells = []
    for index, cell in enumerate(raw_cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):  # nbformat normally joins these; be lenient with hand-made files
            source = "".join(map(str, source))
        cells.append(Cell(f"cell {index}", strip_magics(str(source))))
    if not cells:
        return (), "the notebook has no code cells."
    return tuple(cells), None


# Cell magics whose body is Python that IPython runs (once, or timed): the body runs, the magic line goes.
PYTHON_BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
# `%time stmt` runs stmt; other line magics (`%matplotlib inline`, `%timeit f()`, `%load_ext ...`) are dropped.
PYTHON_LINE_MAGICS = {"time"}
SHELL_OR_MAGIC_LINE = re.compile(r"^(?P<indent>\s*)(?P<magic>[%!].*)$")
ASSIGNED_FROM_SHELL = re.compile(r"^(?P<indent>\s*)(?P<target>[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[%!]")
HELP_LINE = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")
IPYTHON_CALL = re.compile(r"^\s*get_ipython\(\)")


def strip_magics(source: str) -> str:
    """A cell's source as plain Python: IPython magics, shell escapes and `?` help lines neutralised.

    Every line keeps its number, so an error message's line still points at the student's line. A cell
    that is already valid Python only loses its `get_ipython()` calls (so a string or a continued
    expression that happens to hold a `%` line is safe). Otherwise each IPython line becomes a comment
    (`pass  # ...` inside a block); `%%time` and friends keep their Python body, and other cell magics
    (`%%bash`, `%%html`, `%%writefile`) are not Python and are commented out whole.
    """
    lines = source.split("\n")
    if _compiles(source):
        return strip_ipython_calls(source)
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        if name not in PYTHON_BODY_CELL_MAGICS:
            return "\n".join("# " + line for line in lines)
        lines[0] = "# " + lines[0]
    out: list[str] = []
    continued = False  # a shell or magic line ending in a backslash swallows the next line too
    for line in lines:
        if continued:
            out.append("# " + line)
            continued = line.rstrip().endswith("\\")
            continue
        replacement = _python_line(line)
        if replacement != line:
            continued = line.rstrip().endswith("\\")
        out.append(replacement)
    return "\n".join(out)


def strip_ipython_calls(source: str) -> str:
    """Valid Python without its `get_ipython()` lines (which exist only inside IPython), line for line.

    Also applied to .py files: `jupyter nbconvert --to script` writes magics as such calls.
    """
    if "get_ipython" not in source:
        return source
    return "\n".join(_comment(line) if IPYTHON_CALL.match(line) else line for line in source.split("\n"))


def _python_line(line: str) -> str:
    """One physical line with IPython syntax replaced by Python of the same meaning, or by a comment."""
    assigned = ASSIGNED_FROM_SHELL.match(line)
    if assigned:  # `files = !ls`, `t = %timeit -o f()`: the name exists afterwards, with no value
        return f"{assigned['indent']}{assigned['target']} = None  # {line.strip()}"
    if HELP_LINE.match(line) or IPYTHON_CALL.match(line):
        return _comment(line)
    magic = SHELL_OR_MAGIC_LINE.match(line)
    if not magic or magic["magic"].startswith("%%"):
        return _comment(line) if magic else line
    text = magic["magic"]
    name, _, rest = text[1:].partition(" ")
    if text.startswith("%") and name in PYTHON_LINE_MAGICS and rest.strip() and _compiles(rest.strip()):
        return f"{magic['indent']}{rest.strip()}"
    return _comment(line)


def _comment(line: str) -> str:
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    return f"{indent}pass  # {stripped}" if indent else f"# {stripped}"


def _compiles(source: str) -> bool:
    return compile_problem(source, "<cell>") is None
