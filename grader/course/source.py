"""What a submission's source says, read with `ast` in the trusted parent (never executed): lines to quote.

Diagnoses are found from behaviour (diagnose.py); this module only finds the student's own words for the
explanation: their signature, the line that rebinds a parameter, the guard a definition hides under. Every
answer names the graded file's own cell label ("syn.py", "cell 4") and line. Source that does not parse
(or is pathological) simply yields no facts.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterable
from dataclasses import dataclass

MAX_QUOTE = 120

# CPython 3.11 builds an AST's Python objects with one recursion counter per interpreter, not per thread: two
# threads parsing at once (the warm pool's slots, the service's runners) can raise "SystemError: AST
# constructor recursion depth mismatch" (python/cpython#106905), which failed one submission of a batch as a
# grader failure. Every parse in the parent takes this lock.
_PARSING = threading.Lock()


def parse(text: str) -> ast.Module:
    """`ast.parse`, one thread at a time (see _PARSING)."""
    with _PARSING:
        return ast.parse(text)


@dataclass(frozen=True)
class Line:
    label: str  # the file's name or "cell N"
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.label}, line {self.number}: `{self.text}`"


@dataclass(frozen=True)
class _Definition:
    label: str
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    guards: tuple[ast.stmt, ...]  # the if/try/with/for blocks around it, outermost first


class Code:
    """The parsed cells of one submission."""

    def __init__(self, cells: Iterable[tuple[str, str]]):
        self._lines: dict[str, list[str]] = {}
        self._definitions: list[_Definition] = []
        for label, text in cells:
            self._lines[label] = text.splitlines()
            try:
                tree = parse(text)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            self._collect(label, tree.body, ())

    def _collect(self, label: str, body: list[ast.stmt], guards: tuple[ast.stmt, ...]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._definitions.append(_Definition(label, node, guards))
                continue
            for block in ("body", "orelse", "finalbody"):
                inner = getattr(node, block, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    self._collect(label, inner, (*guards, node))
            for handler in getattr(node, "handlers", []) or []:
                self._collect(label, handler.body, (*guards, node))

    def line(self, label: str, number: int) -> Line:
        lines = self._lines.get(label, [])
        text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        return Line(label, number, text[:MAX_QUOTE] + ("…" if len(text) > MAX_QUOTE else ""))

    def definition(self, name: str) -> _Definition | None:
        """The last definition of `name` outside any function or class (the one a run would keep)."""
        found = [d for d in self._definitions if d.node.name == name]
        return found[-1] if found else None

    def guard(self, name: str) -> Line | None:
        """The line of the block a definition of `name` sits in, when it is not at the top level."""
        definition = self.definition(name)
        if definition is None or not definition.guards:
            return None
        return self.line(definition.label, definition.guards[-1].lineno)

    def signature(self, name: str) -> str | None:
        """`name(a, b, c)` as the student wrote the parameters."""
        definition = self.definition(name)
        if definition is None or isinstance(definition.node, ast.ClassDef):
            return None
        arguments = definition.node.args
        names = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
        return f"{name}({', '.join(names)})"

    def function_text(self, name: str) -> str:
        definition = self.definition(name)
        if definition is None:
            return ""
        lines = self._lines.get(definition.label, [])
        end = getattr(definition.node, "end_lineno", None) or definition.node.lineno
        return "\n".join(lines[definition.node.lineno - 1:end])

    def first_line_with(self, name: str, *needles: str) -> Line | None:
        """The first line of function `name` holding one of `needles` (comments ignored)."""
        definition = self.definition(name)
        if definition is None:
            return None
        end = getattr(definition.node, "end_lineno", None) or definition.node.lineno
        for number in range(definition.node.lineno, end + 1):
            text = self.line(definition.label, number).text.split("#")[0]
            if any(needle in text for needle in needles):
                return self.line(definition.label, number)
        return None

    def rebinding(self, function: str, variable: str) -> Line | None:
        """The first `variable = <expression using variable.grad>` inside `function`: the update that replaces
        the parameter by a new tensor (`w = w - lr * w.grad`), as opposed to `w -= ...` in place."""
        definition = self.definition(function)
        if definition is None:
            return None
        for node in ast.walk(definition.node):
            if not isinstance(node, ast.Assign) or not any(
                    isinstance(t, ast.Name) and t.id == variable for t in node.targets):
                continue
            if any(isinstance(n, ast.Attribute) and n.attr == "grad" and isinstance(n.value, ast.Name)
                   and n.value.id == variable for n in ast.walk(node.value)):
                return self.line(definition.label, node.lineno)
        return None

    def append_of(self, function: str, variable: str) -> Line | None:
        """The first `something.append(...)` inside `function` that stores `variable` itself (not `.item()`)."""
        definition = self.definition(function)
        if definition is None:
            return None
        for node in ast.walk(definition.node):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "append" and node.args):
                continue
            stored = node.args[0].elts if isinstance(node.args[0], (ast.Tuple, ast.List)) else [node.args[0]]
            if any(_is_raw(item, variable) for item in stored):
                return self.line(definition.label, node.lineno)
        return None

    def init_without_super(self, class_name: str) -> Line | None:
        """The `def __init__` line of `class_name` when its body never calls super().__init__()."""
        definition = self.definition(class_name)
        if definition is None or not isinstance(definition.node, ast.ClassDef):
            return None
        for node in definition.node.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                         and n.func.attr == "__init__"]
                return None if calls else self.line(definition.label, node.lineno)
        return None


def _is_raw(node: ast.expr, variable: str) -> bool:
    """`w`, `w.data` or `w.detach()`: the tensor's own memory, not a copy of its value."""
    if isinstance(node, ast.Name):
        return node.id == variable
    if isinstance(node, ast.Attribute) and node.attr == "data":
        return _is_raw(node.value, variable)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "detach":
        return _is_raw(node.func.value, variable)
    return False
