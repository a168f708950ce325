"""What `check` grades, from a kernel's history of executed inputs: fast tests, no kernel (history.py)."""

from __future__ import annotations

import os

import pytest

from grader.course.submission import notebook_cells

# Importing grader.notebook starts the kernel's grading host (and its warm worker) beside the importer. These
# tests only need its pure functions: the host would otherwise live as a child of the test session for its whole
# length, and the attack tests that count stray processes below the session would find its worker.
os.environ["GRADER_NOTEBOOK_HOST"] = "1"
try:
    from grader.notebook.history import defined_names, notebook_json, ran_cells
    from grader.notebook.remote import retry_after
finally:
    del os.environ["GRADER_NOTEBOOK_HOST"]


def sources(inputs: list[str]) -> dict[int, str]:
    return {c.number: c.source for c in ran_cells(inputs)}


def test_grading_calls_magics_and_their_results_go_line_for_line():
    inputs = ["", "from grader.notebook import check\nimport torch",
              ("def f(x):\n    return x\nr = check('ex03'); print(r.score)\nkept = 1\n"
              "get_ipython().run_line_magic('matplotlib', 'inline')\nget_ipython().system('ls')"),
              "y = f(2)"]
    got = sources(inputs)
    assert got[1] == "pass\nimport torch"
    assert got[2] == "def f(x):\n    return x\npass; pass\nkept = 1\npass\npass"
    assert got[3] == "y = f(2)"


def test_in_the_cell_running_now_nothing_after_the_grading_call_has_run():
    inputs = ["", "a = 1\nb = 2; check('ex03')\nc = 3"]
    assert sources(inputs) == {1: "a = 1\nb = 2"}
    magic = ["", "a = 1\nget_ipython().run_line_magic('grade', 'ex03')\nc = 3"]
    assert sources(magic) == {1: "a = 1"}


def test_aliases_of_the_grading_calls_are_recognised():
    inputs = ["", "from grader.notebook import check as c\nimport grader.notebook as gn",
              "c('ex03')\ngn.submit('ex03', 'http://x')\nz = 1", "w = 2"]
    assert sources(inputs)[2] == "pass\npass\nz = 1"


def test_a_students_own_function_named_check_is_their_code():
    """A student's `def check(...)` is not the grading call: `y = check(3)` stays in what is graded (it became
    `pass`), until a grader import binds the name again."""
    found = sources(["", "def check(v):\n    return v * 2\n", "y = check(3)\nprint(y)",
                     "from grader.notebook import check\ncheck('ex03')", "z = check('ex03')"])
    assert found[2] == "y = check(3)\nprint(y)"
    assert "check(" not in found[3] and "check(" not in found.get(4, "")


def test_cells_that_do_not_parse_defined_nothing_and_a_rerun_counts_again():
    inputs = ["", "def f(:\n    pass", "def g():\n    return 1", "def g():\n    return 2", "x = 1"]
    got = ran_cells(inputs)
    assert [c.number for c in got] == [2, 3, 4]
    assert defined_names(got) == {"g", "x"}


def test_the_notebook_puts_in_n_at_cell_n_for_the_reader():
    cells = ran_cells(["", "a = 1", "check('ex03')", "", "b = 2", "c = 3"], current=4)
    loaded, problem = notebook_cells(notebook_json(cells))
    assert problem is None
    assert [(c.label, c.source) for c in loaded] == [("cell 1", "a = 1"), ("cell 2", "pass"), ("cell 4", "b = 2")]


@pytest.mark.parametrize(("value", "seconds"), [("120", 120), (None, None), ("soon", None), ("0", 0)])
def test_retry_after_is_read_as_seconds(value, seconds):
    assert retry_after(value) == seconds
