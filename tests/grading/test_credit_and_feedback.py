"""Feedback written from the student's own code and output that is whole: the source reader, the new
diagnoses' evidence, the human table, hints for a terminal, plot formats, file names in messages.

The sandboxed cases (marked slow) grade real files; the rest read plain data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SUBMISSIONS
from test_notebooks import write_notebook

from grader.cli.main import main
from grader.course import exercises, hints
from grader.course.exercises import CheckSpec
from grader.course.source import Code
from grader.course.submission import read
from grader.formats import human, plot
from grader.grading import diagnose, mistakes
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission
from grader.sandbox.protocol import ChildError

ROOT = Path(__file__).resolve().parents[2]
EX01, EX02, EX03, EX05 = (exercises.load(e) for e in ("ex01", "ex02", "ex03", "ex05"))

STUDENT = '''import torch

if torch.cuda.is_available():
    def forward(w, x):
        return w * x


def gradient(x, y_pred, y):
    return np.sum(2 * x * (y_pred - y))  # summed


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    history = []
    for _ in range(n_iters):
        w = w - learning_rate * w.grad
        history.append((w, 1.0))
    return history


class LinearRegression(torch.nn.Module):
    def __init__(self, input_dim, output_dim):
        self.linear = torch.nn.Linear(input_dim, output_dim)
'''


# ------------------------------------------------------------------ the source reader


def test_source_quotes_the_students_lines_with_the_files_own_name():
    code = Code([("mine.py", STUDENT)])
    assert code.signature("gradient") == "gradient(x, y_pred, y)"
    assert str(code.guard("forward")) == "mine.py, line 3: `if torch.cuda.is_available():`"
    assert code.guard("train") is None
    assert str(code.rebinding("train", "w")) == "mine.py, line 15: `w = w - learning_rate * w.grad`"
    assert code.append_of("train", "w").number == 16
    assert code.init_without_super("LinearRegression").number == 21
    assert code.first_line_with("gradient", "sum(").number == 9


def test_source_that_does_not_parse_gives_no_facts():
    code = Code([("broken.py", "def gradient(x, y:\n"), ("cell 2", "(" * 10_000)])
    assert code.signature("gradient") is None and code.guard("gradient") is None
    assert code.rebinding("train", "w") is None


def test_a_correct_update_is_no_rebinding():
    text = ("def train(w):\n    with torch.no_grad():\n        w -= 0.1 * w.grad\n"
            "    w = (w - 0.1 * w.grad).detach()\n    history.append((w.item(), 1))\n")
    code = Code([("ok.py", text)])
    assert code.append_of("train", "w") is None
    assert code.rebinding("train", "w").number == 4  # the text only; the diagnosis needs the child's evidence


# ------------------------------------------------------------------ the new codes' evidence


def check(probe: str, compare: str = "value", fields: tuple[str, ...] = ("value",), **args) -> CheckSpec:
    return CheckSpec(name=f"{probe} check", probe=probe, args=args, compare=compare, points=1, visibility="visible",
                     fields=fields)


NOTEBOOK = {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0], "w": 0.0, "learning_rate": 0.01, "n_iters": 30}


CORRECT = mistakes.Mistake()


def history(mistake: mistakes.Mistake = CORRECT) -> dict[str, list[float]]:
    a = NOTEBOOK
    run = mistakes.simulate(mistakes.Problem.scalar(a["x"], a["y"], a["w"], a["learning_rate"], a["n_iters"]),
                            mistake)
    return {"loss": run.loss.astype(np.float32).tolist(), "w": run.w.astype(np.float32).tolist()}


TRAIN = check("train", "trajectory", ("loss", "w"), **NOTEBOOK)


def test_w_recorded_before_the_update_is_named():
    found = diagnose.from_behaviour(EX03, TRAIN, history(mistakes.Mistake(w_before=True)), history())
    assert found is not None and found.code == "w-before-update"


def test_a_live_tensor_in_the_history_is_named_only_with_the_childs_evidence():
    reference = history()
    aliased = {**reference, "w": [reference["w"][-1]] * NOTEBOOK["n_iters"]}
    assert diagnose.from_behaviour(EX03, TRAIN, aliased, reference) is None  # constant w alone proves nothing
    found = diagnose.from_behaviour(EX03, TRAIN, {**aliased, "aliased_w": True}, reference)
    assert found is not None and found.code == "history-aliases-tensor"
    wrong_loss = {**aliased, "aliased_w": True, "loss": [v * 1.5 for v in reference["loss"]]}
    assert diagnose.from_behaviour(EX03, TRAIN, wrong_loss, reference) is None


def test_argument_order_needs_the_train_calling_in_that_order():
    args = {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0], "y_pred": [0.0, 0.0, 0.0, 0.0]}
    gradient = check("gradient", **args)
    flipped = {"value": 30.0}
    assert diagnose.from_behaviour(EX01, gradient, flipped, {"value": -30.0}).code == "gradient-sign"
    calls = diagnose.Peer(TRAIN, {**history(), "call_orders": {"gradient": "x, y_pred, y"}}, history())
    code = Code([("ex01.py", "def gradient(x, y_pred, y):\n    return 0\n")])
    found = diagnose.from_behaviour(EX01, gradient, flipped, {"value": -30.0}, peers=(calls,), source=code)
    assert found.code == "argument-order" and "def gradient(x, y_pred, y)" in found.explanation


@pytest.mark.parametrize("message", [
    "AttributeError: cannot assign module before Module.__init__() call",
    "AttributeError: 'LinearRegression' object has no attribute '_modules'",
])
def test_a_module_without_super_init_is_named(message):
    code = Code([("ex05.py", STUDENT)])
    found = diagnose.from_error(EX05, check("structure"), ChildError(message=message), source=code)
    assert found.code == "module-not-initialised" and "ex05.py, line 21" in found.explanation


def test_a_rebound_parameter_names_its_cause_before_the_error():
    error = {"kind": "exception", "message": "TypeError: unsupported operand type(s) for *: 'float' and 'NoneType'",
             "evidence": {"rebound": "w", "requires_grad": True}}
    code = Code([("ex03.py", STUDENT)])
    found = diagnose.from_error(EX03, TRAIN, ChildError.from_wire(error), source=code)
    assert found.code == "rebound-parameter"
    base = CheckResult("train", Status.ERROR, 0, 3, "your code raised " + error["message"])
    message = diagnose.attach(base, found).message
    assert message.index("w = w - learning_rate * w.grad") < message.index("unsupported operand")
    no_evidence = ChildError.from_wire({**error, "evidence": {}})
    assert diagnose.from_error(EX03, TRAIN, no_evidence) is None  # no evidence, no code


def test_a_function_hidden_under_a_cuda_guard_is_not_called_missing():
    error = {"kind": "missing", "message": "`forward` is not defined in your file.", "name": "forward"}
    text = diagnose.missing_name(ChildError.from_wire(error), Code([("ex03.py", STUDENT)]))
    assert "if torch.cuda.is_available():" in text and "not defined in your file" not in text
    assert diagnose.missing_name(ChildError.from_wire({**error, "name": "loss"}), Code([("ex03.py", STUDENT)])) is None


def test_the_summed_gradient_message_quotes_np_sum_not_np_dot():
    code = Code([("ex01.py", STUDENT.replace("y_pred, y)", "y, y_pred)"))])
    found = diagnose.make("gradient-not-averaged", source=code)
    assert "np.sum(2 * x * (y_pred - y))" in found.explanation and "np.dot" not in found.explanation
    dotted = Code([("ex01.py", "def gradient(x, y, y_pred):\n    return np.dot(2*x, y_pred - y).mean()\n")])
    assert "np.dot" in diagnose.make("gradient-not-averaged", source=dotted).explanation


# ------------------------------------------------------------------ the human table


def report(*checks: CheckResult, **changes) -> Report:
    fields = {"exercise": "ex05", "title": "A PyTorch model", "checks": checks, "devices": ("cpu",),
              "submission": Submission("ex05.py", "0" * 64, "py", 1), "grader_version": "0", "versions": {},
              "sandbox": {"tier": "none"}, "status": RunStatus.OK}
    return Report(**{**fields, **changes})


def test_long_check_names_wrap_whole_words_and_are_never_cut():
    name = "train: Y = 5X, w starts at 1, lr 0.02, 25 epochs, with a name long enough to need a second line here"
    text = human.render(report(CheckResult(name, Status.FAILED, 0, 2, "differs.", visibility="hidden")))
    table = [line for line in text.splitlines() if "FAIL" in line or line.startswith(" " * 19)]
    words = " ".join(line.strip() for line in table)
    assert name in words.replace("FAIL 0/2 ", "") and "(hidden)" in text
    assert all(len(line) <= human.WIDTH for line in table)


def test_the_same_long_error_on_many_checks_is_explained_once():
    error = "your code raised AttributeError: cannot assign module before Module.__init__() call " * 2
    checks = [CheckResult(f"check {i}", Status.ERROR, 0, 1, error) for i in range(5)]
    text = human.render(report(*checks))
    assert text.count("cannot assign module") == 2  # once, on its two lines of repetition
    assert text.count('The same as for "check 0" above.') == 4


def test_cell_errors_are_listed_at_full_marks_too():
    full = report(CheckResult("a", Status.PASSED, 1, 1, "ok"), cell_errors=("NameError: name 'X' is not defined",))
    assert full.full_marks
    assert "NameError: name 'X' is not defined" in human.render(full)


# ------------------------------------------------------------------ hints, plot formats, file names


def test_hints_are_rendered_for_a_terminal():
    for exercise_id in exercises.exercise_ids():
        for hint in hints.load(exercise_id):
            text = hints.for_terminal(hint.text, 80)
            assert "`" not in text and "**" not in text
            assert all(len(line) <= 80 or " " not in line.strip() for line in text.splitlines())
    assert hints.for_terminal("- a **bold** [link](http://x)\n\n```\ncode  kept\n```") == \
        "  • a bold link (http://x)\n\n    code  kept"


def test_a_hint_number_out_of_range_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_STATE", str(tmp_path / "state.json"))
    result = CliRunner().invoke(main, ["hint", "ex01", "-n", "9"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "there is no hint 9" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_suffix_names(tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    target = tmp_path / f"curves{suffix}"
    plot.write_plot(report(CheckResult("a", Status.PASSED, 1, 1, "ok")), target)
    assert target.read_bytes().startswith(magic)


def test_plot_refuses_a_suffix_it_cannot_write(tmp_path):
    result = CliRunner().invoke(main, ["ex03", str(ROOT / "solutions" / "ex03.py"), "--plot",
                                       str(tmp_path / "curves.jpg")])
    assert result.exit_code == 2 and "curves.jpg" in result.stderr
    assert not (tmp_path / "curves.jpg").exists()


def test_messages_name_the_graded_files_own_name(tmp_path):
    broken = tmp_path / "syn.py"
    broken.write_text("def forward(w, x:\n    return w * x\n", "utf-8")
    (tmp_path / "ex03.py").write_text("print('a line of ex03.py')\n", "utf-8")
    loaded = read(broken, "ex03")
    assert loaded.problem.startswith("SyntaxError in syn.py, line 1") and "def forward(w, x:" in loaded.problem
    assert "ex03.py" not in loaded.problem


# ------------------------------------------------------------------ in the sandbox


@pytest.mark.slow
def test_a_wrong_architecture_costs_only_the_models_points(grade_file):
    graded = grade_file("ex05", SUBMISSIONS / "ex05" / "bug_two_layers.py")
    lost = {c.name for c in graded.checks if not c.passed}
    assert lost and all(n.startswith(("LinearRegression(", "model(x)", "train end to end")) for n in lost), lost
    assert graded.score >= graded.max_score - 6


@pytest.mark.slow
def test_a_notebook_cell_that_raised_is_listed_even_at_full_marks(tmp_path, grade_file):
    solution = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
    notebook = write_notebook(tmp_path / "ex03.ipynb", solution, "print(undefined_name)")
    graded = grade_file("ex03", notebook)
    assert graded.full_marks and graded.error is None
    assert len(graded.cell_errors) == 1 and "undefined_name" in graded.cell_errors[0]
    assert "undefined_name" in human.render(graded)


@pytest.mark.slow
def test_the_rebound_parameter_message_quotes_the_graded_file(grade_file):
    graded = grade_file("ex03", SUBMISSIONS / "ex03" / "bug_rebound_parameter.py")
    train = next(c for c in graded.checks if c.name.startswith("train: notebook"))
    assert train.message.startswith("The cause is bug_rebound_parameter.py, line 20: "
                                    "`w = w - learning_rate * w.grad`")


# ------------------------------------------------------------------ the order-aware substitute (child-side code)


def test_the_substitute_follows_the_students_argument_order():
    from grader.sandbox.probing import in_callers_order, reference_mse_gradient

    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 10.0, 15.0, 20.0])
    gradient, forward = in_callers_order(reference_mse_gradient, x, y, "gradient")
    true = float(reference_mse_gradient(x, y, 1.0 * x))
    prediction = forward(1.0, x)  # at w = 1 the prediction equals x by value
    assert float(gradient(x, prediction, y)) == true
    assert gradient.call_orders == {"gradient": "x, y_pred, y"}
    assert float(gradient(x, 1.0 * x, y)) == true  # computed by hand, not by forward: still recognised
    assert float(gradient(x, y, prediction)) == true
    assert float(gradient(x=x, y=y, y_pred=prediction)) == true
    assert float(gradient(x[0], y[0], prediction[0])) == float(reference_mse_gradient(x[0], y[0], prediction[0]))
