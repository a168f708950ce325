"""The package's shape (docs/architecture.md): layers whose imports point only down, no import cycle, small modules.

Every import counts, the ones inside functions too (an import put there to dodge a cycle is still an arrow).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "grader"
# Lowest first: a layer may import its own modules and the layers before it, never one after it.
LAYERS = ("model", "course", "sandbox", "grading", "execution", "authoring", "formats", "notebook", "classroom",
          "lms", "service", "cli")
ENTRY_POINTS = {"grader.distributed"}  # `dask worker --preload grader.distributed`: above every layer
# `%load_ext grader` makes IPython call grader.load_ipython_extension: the package's one arrow upwards, by name.
HOOKS = {("grader", "grader.notebook.magics")}
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue  # Alembic's scripts, loaded by file name
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The grader modules `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` depends on that module; `from module import name` on the module
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("grader."):
                found.add(name)
    return found


def layer(module: str) -> int:
    if module in ENTRY_POINTS:
        return len(LAYERS)
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # grader/__init__.py: the version, importable from anywhere
    assert parts[1] in LAYERS, f"{module} is in no layer: add its package to LAYERS (and docs/architecture.md)"
    return LAYERS.index(parts[1])


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def test_every_layer_is_a_package_that_says_what_it_holds():
    for name in LAYERS:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file(), f"grader/{name}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text("utf-8"))), f"grader/{name}/__init__.py has no docstring"


def test_imports_point_only_down():
    upward = [f"{importer} -> {imported}" for importer, targets in graph().items() for imported in sorted(targets)
              if layer(imported) > layer(importer) and (importer, imported) not in HOOKS]
    assert upward == []


def test_there_is_no_import_cycle():
    edges = graph()
    state: dict[str, int] = defaultdict(int)  # 0 unseen, 1 on the path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state[target] == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [node, target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[node] = 2

    for start in sorted(edges):
        if state[start] == 0:
            visit(start, [start])
    assert cycles == []


def test_the_result_model_is_plain_data():
    for name, targets in graph().items():
        if name.startswith("grader.model"):
            assert all(t.startswith("grader.model") for t in targets), f"{name} imports {targets}"
    for path in (PACKAGE / "model").glob("*.py"):
        imported = imports_of(path, set()) | {
            alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(node, ast.Import) for alias in node.names} | {
            (node.module or "").split(".")[0] for node in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(node, ast.ImportFrom)}
        assert not imported & {"torch", "numpy", "sqlalchemy", "fastapi"}, f"{path.name}: {imported}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_500_lines(name):
    lines = len(modules()[name].read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines; split it by what its parts do"


def test_ruff_is_clean():
    """The rule set in pyproject.toml (E, F, I, B, UP, SIM); `bash scripts/test` runs it too."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra installs it)")
    result = subprocess.run([ruff, "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean_on_the_checked_layers():
    """model/ and grading/ (pyproject.toml's [tool.mypy] files)."""
    mypy = pytest.importorskip("mypy.api")
    stdout, stderr, status = mypy.run([])
    assert status == 0, stdout + stderr


def _status_words() -> set[str]:
    from grader.classroom.batch import DoneState
    from grader.classroom.gradebook import CellStatus
    from grader.model.report import RunStatus, Status

    return {str(m.value) for vocabulary in (RunStatus, Status, CellStatus, DoneState) for m in vocabulary}


def test_statuses_are_compared_as_enums_not_strings():
    """In the front ends (lms/, classroom/, cli/) a status is compared with its enum's member, never with a
    string literal that a renamed status would silently stop matching."""
    words = _status_words()
    found = []
    for folder in ("lms", "classroom", "cli"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if not isinstance(node, ast.Compare):
                    continue
                for side in [node.left, *node.comparators]:
                    items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                    found += [f"{path.relative_to(ROOT)}:{node.lineno}: {item.value!r}" for item in items
                              if isinstance(item, ast.Constant) and item.value in words]
    assert found == []


def test_the_service_app_only_assembles_its_routers():
    """service/app.py makes the application; each resource's routes live in service/routes/ (pages and LTI
    beside them), and nothing imports a moved name through app.py."""
    tree = ast.parse((PACKAGE / "service" / "app.py").read_text("utf-8"))
    routes = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
              for decorator in node.decorator_list if isinstance(decorator, ast.Call)
              and isinstance(decorator.func, ast.Attribute) and decorator.func.attr in ("get", "post", "put", "delete")]
    assert routes == []
    reexports = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 for alias in node.names if alias.asname == alias.name]
    assert reexports == []
    importers = [f"{name}: {alias.name}" for name, path in modules().items()
                 for node in ast.walk(ast.parse(path.read_text("utf-8")))
                 if isinstance(node, ast.ImportFrom) and node.module == "grader.service.app"
                 for alias in node.names if alias.name != "create_app"]
    assert importers == []
