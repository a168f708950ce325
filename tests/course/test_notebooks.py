"""Notebook submissions: IPython syntax neutralised line for line, cells run in order, errors name the cell."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.course import exercises
from grader.course.submission import notebook_cells, read, strip_magics

ROOT = Path(__file__).resolve().parents[2]
SOLVED = [e for e in exercises.exercise_ids() if (ROOT / "solutions" / f"{e}.py").exists()]


def write_notebook(path: Path, *cells: str, markdown_first: str | None = "# My work") -> Path:
    made = [new_markdown_cell(markdown_first)] if markdown_first else []
    made += [new_code_cell(source) for source in cells]
    nbformat.write(new_notebook(cells=made), str(path))
    return path


def solution_as_cells(source: str) -> list[str]:
    """A solution split as a student's notebook would be: imports with magics, then two code cells."""
    body = ast.parse(source).body
    lines = source.splitlines()
    first_def = next(i for i, node in enumerate(body) if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    split = first_def + max(1, (len(body) - first_def) // 2)

    def chunk(start: int, stop: int) -> str:
        begin = body[start].lineno - 1 if start < len(body) else len(lines)
        end = body[stop].lineno - 1 if stop < len(body) else len(lines)
        # decorators and comments directly above a node belong to it
        if start < len(body) and getattr(body[start], "decorator_list", None):
            begin = body[start].decorator_list[0].lineno - 1
        return "\n".join(lines[begin:end])

    setup = "%matplotlib inline\n!pip install numpy torch  # as in Colab\n" + chunk(0, first_def)
    return [setup, chunk(first_def, split), "%%time\n" + chunk(split, len(body))]


# ------------------------------------------------------------------ IPython syntax, no sandbox


@pytest.mark.parametrize(("line", "expected"), [
    ("%matplotlib inline", "# %matplotlib inline"),
    ("!pip install torch", "# !pip install torch"),
    ("    !nvidia-smi", "    pass  # !nvidia-smi"),
    ("files = !ls", "files = None  # files = !ls"),
    ("a, b = %who_ls", "a, b = None  # a, b = %who_ls"),
    ("forward?", "# forward?"),
    ("??train", "# ??train"),
    ("%time history = train(x, y)", "history = train(x, y)"),
    ("%timeit -n 3 train(x, y)", "# %timeit -n 3 train(x, y)"),
    ("get_ipython().run_line_magic('matplotlib', 'inline')", "# get_ipython().run_line_magic('matplotlib', 'inline')"),
])
def test_ipython_lines_become_python(line, expected):
    source = f"x = 1\n{line}\ny = 2"
    if line.startswith("    "):
        source = f"if True:\n{line}\ny = 2"
    converted = strip_magics(source)
    assert converted.split("\n")[1] == expected
    compile(converted, "cell", "exec")
    assert converted.count("\n") == source.count("\n")  # line numbers survive


def test_cell_magics_keep_a_python_body_and_drop_other_languages():
    timed = strip_magics("%%time\ndef f():\n    return 1\nvalue = f()")
    namespace: dict = {}
    exec(compile(timed, "cell", "exec"), namespace)  # noqa: S102 - our own test source
    assert namespace["value"] == 1 and timed.count("\n") == 3
    for magic in ("%%bash\necho hi\nls -l", "%%writefile model.py\ndef f(:\n", "%%html\n<b>hi</b>"):
        compile(strip_magics(magic), "cell", "exec")
        assert all(line.startswith("#") for line in strip_magics(magic).split("\n"))


def test_valid_python_is_never_touched_and_continued_shell_lines_are_swallowed():
    text = 'doc = """\n%d percent\n!not a shell line\n"""\nrate = 5 % 3'
    assert strip_magics(text) == text
    converted = strip_magics("!pip install \\\n    numpy\nx = 1")
    compile(converted, "cell", "exec")
    assert converted.split("\n")[2] == "x = 1"


def test_cells_are_labelled_by_their_position_in_the_notebook(tmp_path):
    path = write_notebook(tmp_path / "ex03.ipynb", "import torch", "%matplotlib inline\nx = 1")
    loaded = read(path, "ex03")
    assert loaded.problem is None and loaded.submission.kind == "ipynb"
    assert [c.label for c in loaded.cells] == ["cell 2", "cell 3"]  # cell 1 is the markdown title
    assert loaded.cells[1].source == "# %matplotlib inline\nx = 1"


def test_a_syntax_error_in_one_cell_does_not_reject_the_notebook(tmp_path):
    path = write_notebook(tmp_path / "ex03.ipynb", "def f(:\n    pass", "x = 1")
    assert read(path, "ex03").problem is None  # the child skips and reports that cell


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "cannot be read"),
    (('{"cells": [{"cell_type": "markdown", "source": "hi", "metadata": {}}], "metadata": {}, '
     '"nbformat": 4, "nbformat_minor": 5}'), "no code cells"),
])
def test_broken_notebooks_are_a_graded_problem(tmp_path, content, words):
    path = tmp_path / "ex03.ipynb"
    path.write_text(content, "utf-8")
    assert words in read(path, "ex03").problem


def test_hand_written_source_lists_are_joined():
    text = ('{"cells": [{"cell_type": "code", "source": ["x = 1\\n", "y = x + 1"], "metadata": {}, '
            '"outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    cells, problem = notebook_cells(text)
    assert problem is None and cells[0].source == "x = 1\ny = x + 1"


# ------------------------------------------------------------------ grading notebooks in the sandbox


@pytest.mark.slow
@pytest.mark.parametrize("exercise_id", SOLVED)
def test_a_notebook_copy_of_the_solution_scores_full_marks(tmp_path, grade_file, exercise_id):
    source = (ROOT / "solutions" / f"{exercise_id}.py").read_text("utf-8")
    cells = solution_as_cells(source)
    path = write_notebook(tmp_path / f"{exercise_id}.ipynb", *cells)
    report = grade_file(exercise_id, path)
    failing = [(c.name, c.message) for c in report.checks if not c.passed]
    assert report.full_marks, (report.error, failing)
    assert report.submission.kind == "ipynb"


SEED_STYLE = [
    "%matplotlib inline\nimport torch\nimport matplotlib.pyplot as plt",
    # global data and weight, as the course notebooks have them
    ("X = torch.tensor([1, 2, 3, 4], dtype=torch.float32)\nY = torch.tensor([2, 4, 6, 8], dtype=torch.float32)\n"
    "w = torch.tensor(0.0, dtype=torch.float32, requires_grad=True)"),
    "def forward(w, x):\n    return w * x\n\ndef loss(y, y_pred):\n    return ((y_pred - y) ** 2).mean()",
    ("def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):\n"
    "    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)\n"
    "    history = []\n"
    "    for epoch in range(n_iters):\n"
    "        l = loss(y, forward(w, x))\n"
    "        l.backward()\n"
    "        with torch.no_grad():\n"
    "            w -= learning_rate * w.grad\n"
    "        w.grad.zero_()\n"
    "        history.append((w.item(), l.item()))\n"
    "    return history"),
    # top-level training on the globals, with prints and a plot, as the notebooks do
    ("learning_rate = 0.01\nfor epoch in range(100):\n    l = loss(Y, forward(w, X))\n    l.backward()\n"
    "    with torch.no_grad():\n        w -= learning_rate * w.grad\n    w.grad.zero_()\n"
    "    if epoch % 10 == 0:\n        print(f'Epoch {epoch + 1}: w = {w:.3f}, loss = {l:.8f}')\n"
    "plt.plot([h[1] for h in train(X, Y)])\nplt.yscale('log')\nplt.show()"),
    "n = float(input('Enter a number to make a prediction: '))\nprint(forward(w, n))",
]


@pytest.mark.slow
def test_a_notebook_that_trains_at_top_level_and_asks_for_input_still_grades(tmp_path, grade_file):
    report = grade_file("ex03", write_notebook(tmp_path / "ex03.ipynb", *SEED_STYLE))
    assert report.full_marks, (report.error, [(c.name, c.message) for c in report.checks if not c.passed])
    assert "Epoch 91: w = 2.000" in report.output


@pytest.mark.slow
def test_notebook_errors_name_the_cell_and_the_line(tmp_path, grade_file):
    cells = list(SEED_STYLE)
    cells[3] = cells[3].replace("history.append((w.item(), l.item()))", "history.append((w.item(), l.itme()))")
    cells.append("def predict(x:\n    return 2 * x")  # cell 8
    report = grade_file("ex03", write_notebook(tmp_path / "ex03.ipynb", *cells))
    assert not report.full_marks
    # the syntax error: its cell and line
    assert "SyntaxError" in report.error and "cell 8, line 1" in report.error
    # the top-level cell 6 stopped inside train, which cell 5 defines
    assert "cell 6 stopped: AttributeError" in report.error and "(at cell 5, line 10, in train:" in report.error
    # the input() cell is named, and explained
    assert "cell 7, line 1" in report.error and "input()" in report.error
    # the functions of the cells that ran are graded
    assert next(c for c in report.checks if c.name.startswith("forward")).passed
    train = next(c for c in report.checks if c.name.startswith("train: notebook"))
    assert "cell 5, line 10, in train" in train.message and "itme" in train.message


@pytest.mark.slow
def test_shell_and_other_language_cells_do_not_break_grading(tmp_path, grade_file):
    cells = ["%%bash\npip install torch\nnvidia-smi", "files = !ls\n%load_ext autoreload\n%autoreload 2"]
    cells += solution_as_cells((ROOT / "solutions" / "ex03.py").read_text("utf-8"))
    report = grade_file("ex03", write_notebook(tmp_path / "ex03.ipynb", *cells, markdown_first=None))
    assert report.full_marks, report.error


def test_a_continued_expression_starting_a_line_with_percent_is_kept():
    text = "y = (7\n     % 3)\nget_ipython().system('ls')"
    assert strip_magics(text) == "y = (7\n     % 3)\n# get_ipython().system('ls')"


def test_a_script_exported_by_nbconvert_loses_its_get_ipython_lines(tmp_path):
    path = tmp_path / "ex03.py"
    path.write_text("import torch\nget_ipython().run_line_magic('matplotlib', 'inline')\nx = 1\n", "utf-8")
    loaded = read(path, "ex03")
    assert loaded.problem is None
    assert loaded.cells[0].source.split("\n")[1:3] == ["# get_ipython().run_line_magic('matplotlib', 'inline')",
                                                       "x = 1"]
