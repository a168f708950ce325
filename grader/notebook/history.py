"""What a kernel defines now, as cells to grade: the inputs it ran, in the order it ran them, as they ran.

IPython keeps every executed input, already turned into Python (`In`, its parsed history): an edit not yet
run is not there, a cell run twice is there twice (the later run wins, as in the kernel), and magics and
shell escapes are `get_ipython()` calls. From that history this module takes out what is not the
student's code: the grading calls themselves (`check`, `submit`, `%grade`, the `grader` imports), magics and
shell escapes, and in the cell running now whatever comes after the grading call (it has not run yet).
Line numbers are kept, so a message quoting "cell 7, line 3" points at the student's line of `In [7]`.

Kernel-side and light: only `ast`, never the grader's heavy modules.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

GRADING_CALLS = frozenset({"check", "hint", "check_all", "submit"})


@dataclass(frozen=True)
class RanCell:
    number: int  # its execution count: `In [number]`
    source: str  # Python, without grading calls, magics or shell escapes; line numbers as the student's


def ran_cells(inputs: list[str], current: int | None = None) -> list[RanCell]:
    """The executed inputs (`In`, index = execution count) as cells to grade.

    `current`: the execution count of the cell running now (the last one by default): in it, only what
    comes before the grading call has run. A cell that does not parse defined nothing and is left out.
    """
    if current is None:
        current = len(inputs) - 1
    grading_names = set(GRADING_CALLS)
    cells = []
    for number, source in enumerate(inputs):
        if number == 0 or not isinstance(source, str) or not source.strip():
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # raised at once in the kernel: it defined nothing
        # a student's own `def check(...)` (or `check = ...`) is theirs from then on: calls to it are their code
        own = set().union(*(_bound(node) for node in tree.body if not _is_grader_import(node)))
        grading_names = (grading_names - own) | _names_bound_to_grader(tree)
        kept = _without_grading(source, tree, grading_names, number == current)
        if kept.strip():
            cells.append(RanCell(number, kept))
        if number == current:
            break
    return cells


def notebook_json(cells: list[RanCell]) -> str:
    """A notebook whose cell N is `In [N]` (markdown placeholders fill the gaps), so that the grader's
    "cell N" (it counts every cell from the top) is the student's `In [N]`."""
    by_number = {c.number: c.source for c in cells}
    last = max(by_number, default=0)
    notebook_cells = []
    for number in range(1, last + 1):
        if number in by_number:
            notebook_cells.append({"cell_type": "code", "execution_count": number, "metadata": {},
                                   "outputs": [], "source": by_number[number]})
        else:
            notebook_cells.append({"cell_type": "markdown", "metadata": {}, "source": ""})
    return json.dumps({"cells": notebook_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def defined_names(cells: list[RanCell]) -> set[str]:
    """Names the cells bind at their top level (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for cell in cells:
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in tree.body:
            names |= _bound(node)
    return names


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _names_bound_to_grader(tree: ast.Module) -> set[str]:
    """Names through which a cell reaches the grading calls: `from grader.notebook import check as c` binds
    `c`; `import grader.notebook as gn` binds `gn` (then `gn.check(...)`), `import grader` binds `grader`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "grader":
            names |= {a.asname or a.name for a in node.names if a.name in GRADING_CALLS | {"notebook"}}
        elif isinstance(node, ast.Import):
            names |= {a.asname or "grader" for a in node.names if a.name.split(".")[0] == "grader"}
    return names


def _is_grader_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "grader"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "grader" for a in node.names)
    return False


def _kind(node: ast.stmt, grading_names: set[str]) -> str | None:
    """"grading" (a grading call, `%grade`), "ipython" (another magic or shell escape), "import" (of the
    grader), or None: the student's own statement. Definitions are always the student's: a function that
    calls get_ipython() inside is theirs (the reader neutralises such lines)."""
    if _is_grader_import(node):
        return "import"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    kind = None
    for inner in ast.walk(node):
        if not isinstance(inner, ast.Call):
            continue
        func = inner.func
        if isinstance(func, ast.Name) and func.id in grading_names:
            return "grading"
        if isinstance(func, ast.Attribute) and func.attr in GRADING_CALLS and _root(func.value) in grading_names:
            return "grading"
        if isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic") and \
                _root(func.value) == "get_ipython" and inner.args and \
                isinstance(inner.args[0], ast.Constant) and inner.args[0].value == "grade":
            return "grading"
        if isinstance(func, ast.Name) and func.id == "get_ipython":
            kind = "ipython"
    return kind


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _without_grading(source: str, tree: ast.Module, grading_names: set[str], running_now: bool) -> str:
    """The cell with its grading statements, grader imports, magics and shell escapes replaced by `pass`,
    line for line; in the cell running now, nothing after its first grading call (it has not run yet).

    A statement that uses what a grading call returned (`r = check("ex03")` then `print(r.score)`) goes
    too: graded, it would only raise a NameError the student never saw."""
    lines = source.split("\n")
    dropped: list[ast.stmt] = []
    for node in tree.body:
        kind = _kind(node, grading_names)
        if kind is None and _uses(node, grading_names):
            kind = "result"
        if kind is None:
            continue
        if running_now and kind == "grading":
            before = lines[node.lineno - 1].encode("utf-8")[: node.col_offset].decode("utf-8", "replace")
            lines = lines[: node.lineno - 1] + ([before.rstrip().rstrip(";")] if before.strip() else [])
            break
        if kind == "grading":
            grading_names |= _bound(node)
        dropped.append(node)
    for node in reversed(dropped):  # from the end: a statement's columns hold until those after it are gone
        if node.lineno <= len(lines):
            _blank(lines, node)
    return "\n".join(lines)


def _uses(node: ast.stmt, names: set[str]) -> bool:
    """A top-level statement (not a definition) that reads one of `names` (a grading call's result)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    results = names - GRADING_CALLS
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in results
               for n in ast.walk(node))


def _blank(lines: list[str], node: ast.stmt) -> None:
    """Replace one top-level statement with `pass`, keeping every line's number (and any other statement
    sharing its first or last line through `;`)."""
    start, end = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    head = lines[start].encode("utf-8")[: node.col_offset].decode("utf-8", "replace")
    tail = lines[end].encode("utf-8")[node.end_col_offset or 0:].decode("utf-8", "replace")
    lines[start] = head + "pass" + tail
    for index in range(start + 1, end + 1):
        lines[index] = ""
