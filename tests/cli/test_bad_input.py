"""Bad submissions: each one gets a clear message and a schema-valid report, never a grader traceback.

Every case is the exercise's reference solution with one thing broken (or a file that is not Python
at all), written to tmp_path and graded through the library with a shared warm worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.course import exercises, hints
from grader.formats import human
from grader.grading.pipeline import Limits
from grader.model.report import Report, Status, to_dict, to_json, validation_errors

ROOT = Path(__file__).resolve().parents[2]
GRADER_PATH = re.compile(r"grader/|site-packages|Traceback \(most recent call last\)")

pytestmark = pytest.mark.slow


def solution(exercise_id: str) -> str:
    return (ROOT / "solutions" / f"{exercise_id}.py").read_text("utf-8")


def stub(exercise_id: str) -> str:
    return (ROOT / "exercises" / exercise_id / "stub.py").read_text("utf-8")


def replace_once(text: str, old: str, new: str) -> str:
    assert old in text, f"the solution no longer contains {old!r}; update this test"
    return text.replace(old, new, 1)


def without_function(text: str, name: str) -> str:
    """The source with `def name(...)` and its body removed (up to the next top-level statement)."""
    pattern = re.compile(rf"^def {name}\(.*?(?=^\S)", re.MULTILINE | re.DOTALL)
    assert pattern.search(text), f"no top-level def {name} in the solution"
    return pattern.sub("", text, count=1)


def in_train(text: str, statement: str) -> str:
    """Insert `statement` as the first line of train's body (after its docstring, if any)."""
    match = re.search(r"^def train\(.*?\):\n(    \"\"\".*?\"\"\"\n)?", text, re.MULTILINE | re.DOTALL)
    assert match, "no def train in the solution"
    return text[: match.end()] + f"    {statement}\n" + text[match.end():]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def refuse_constant(constant: str) -> None:
    raise AssertionError(f"the report is not strict JSON: it contains {constant}")


def assert_clean(report: Report) -> None:
    """A valid report, not full marks, every message readable and free of the grader's own frames."""
    data = to_dict(report)
    assert validation_errors(data) == []
    assert json.loads(to_json(report), parse_constant=refuse_constant) == json.loads(json.dumps(data))
    assert not report.full_marks
    for check in report.checks:
        assert check.message.strip(), f"{check.name}: empty message"
        assert not GRADER_PATH.search(check.message), check.message
        assert check.score <= check.max_score
    if report.error:
        assert not GRADER_PATH.search(report.error), report.error
    shown = human.render(hints.annotate(report), hint_count=len(hints.load(report.exercise)))
    assert f"{report.score:g}" in shown and not GRADER_PATH.search(shown)


def checks_of(report: Report, function: str) -> list:
    return [c for c in report.checks if c.name.startswith(function)]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    def make(exercise_id: str, content: str | bytes) -> Path:
        path = tmp_path / f"{exercise_id}.py"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, "utf-8")
        return path

    return make


# ---------------------------------------------------------------- files that are not (readable) Python


@dataclass(frozen=True)
class Unreadable:
    id: str
    content: Callable[[str], str | bytes]
    message: re.Pattern[str]


UNREADABLE = [
    Unreadable("syntax-error", lambda ex: replace_once(solution(ex), "return w * x\n", "return w * x +\n"),
               re.compile(r"SyntaxError.*line (\d+)")),
    Unreadable("empty", lambda ex: "", re.compile(r"empty.*grade init ex\d\d")),
    Unreadable("whitespace-only", lambda ex: "\n   \n\t\n", re.compile(r"empty")),
    Unreadable("binary", lambda ex: bytes(range(256)) * 4, re.compile(r"binary")),
    Unreadable("latin-1", lambda ex: ("# café\n" + solution(ex)).encode("latin-1"),
               re.compile(r"not UTF-8.*line 1\b")),
    Unreadable("latin-1-later-line", lambda ex: (solution(ex) + "\n# à bientôt\n").encode("latin-1"),
               re.compile(r"not UTF-8.*line (\d+)")),
    Unreadable("utf-16", lambda ex: solution(ex).encode("utf-16"), re.compile(r"UTF-16.*UTF-8")),
    Unreadable("too-large", lambda ex: b"# " + b"x" * (3 * 1024 * 1024), re.compile(r"larger than")),
]


@pytest.mark.parametrize("exercise_id", ["ex01", "ex03"])
@pytest.mark.parametrize("case", UNREADABLE, ids=lambda c: c.id)
def test_unreadable_file_is_a_graded_zero_with_a_message(grade_file, write, exercise_id: str,
                                                         case: Unreadable) -> None:
    if exercise_id not in exercises.exercise_ids():
        pytest.skip(f"{exercise_id} is not registered yet")
    report = grade_file(exercise_id, write(exercise_id, case.content(exercise_id)))
    assert_clean(report)
    assert report.score == 0
    match = case.message.search(report.error or "")
    assert match, report.error
    assert all(c.status is Status.ERROR and case.message.search(c.message) for c in report.checks)
    if case.id == "syntax-error":
        assert int(match.group(1)) == line_of(solution(exercise_id), "return w * x")
        assert "return w * x +" in report.error  # the offending line is quoted
    if case.id == "latin-1-later-line":
        assert int(match.group(1)) == len(solution(exercise_id).splitlines()) + 2


def test_utf8_bom_still_grades_to_full_marks(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", b"\xef\xbb\xbf" + solution("ex03").encode("utf-8")))
    assert validation_errors(to_dict(report)) == []
    assert report.error is None
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]


# ---------------------------------------------------------------- partly right submissions


def test_missing_function_costs_only_its_own_checks(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", without_function(solution("ex03"), "loss")))
    assert_clean(report)
    assert report.error is None
    loss_checks = checks_of(report, "loss(")
    assert loss_checks and all(c.status is Status.ERROR and c.score == 0 for c in loss_checks)
    assert all("`loss`" in c.message and "not defined" in c.message for c in loss_checks)
    # train end to end with the student's own functions needs loss too: it names the missing function (it said
    # "'NoneType' object is not callable" once a substituted loss had been put back as None)
    own = [c for c in report.checks if "your own" in c.name]
    assert own and all(c.score == 0 and "name 'loss' is not defined" in c.message for c in own), \
        [c.message for c in own]
    others = [c for c in report.checks if c not in loss_checks and c not in own]
    # forward is graded on its own, and train runs with the reference loss substituted.
    assert others and all(c.passed for c in others), [(c.name, c.message) for c in others if not c.passed]


def test_missing_gradient_in_ex01_leaves_forward_and_loss_scored(grade_file, write) -> None:
    if "ex01" not in exercises.exercise_ids():
        pytest.skip("ex01 is not registered yet")
    report = grade_file("ex01", write("ex01", without_function(solution("ex01"), "gradient")))
    assert_clean(report)
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))
    gradient_checks = checks_of(report, "gradient(")
    assert gradient_checks and all("`gradient`" in c.message for c in gradient_checks)
    assert 0 < report.score < report.max_score


@pytest.mark.parametrize("exercise_id", ["ex01", "ex03"])
def test_untouched_stub_is_not_implemented_everywhere(grade_file, write, exercise_id: str) -> None:
    if exercise_id not in exercises.exercise_ids():
        pytest.skip(f"{exercise_id} is not registered yet")
    report = grade_file(exercise_id, write(exercise_id, stub(exercise_id)))
    assert_clean(report)
    assert report.score == 0
    assert report.error is None  # the file imports fine; each function says it is not done
    assert all(c.diagnosis == "not-implemented" for c in report.checks), [c.diagnosis for c in report.checks]
    assert all("Not implemented" in c.message for c in report.checks)


# ---------------------------------------------------------------- wrong return types, shapes, values


@dataclass(frozen=True)
class WrongReturn:
    id: str
    edit: Callable[[str], str]
    function: str  # the checks (by name prefix) that must fail
    message: str  # a fragment every failing message contains (lower case)


WRONG_RETURNS = [
    WrongReturn("train-returns-dict", lambda s: replace_once(s, "    return history", "    return {'h': history}"),
                "train", "should return a list"),
    WrongReturn("train-returns-tensor",
                lambda s: replace_once(s, "    return history", "    return torch.tensor(history)"),
                "train", "should return a list"),
    WrongReturn("train-returns-none", lambda s: replace_once(s, "    return history", "    pass"),
                "train", "return` statement"),
    WrongReturn("train-too-few-epochs", lambda s: replace_once(s, "    return history", "    return history[:-1]"),
                "train", "one per epoch"),
    WrongReturn("train-entries-are-strings",
                lambda s: replace_once(s, "history.append((w.item(), l.item()))", "history.append(('w', 'l'))"),
                "train", "should be a number"),
    WrongReturn("forward-column",
                lambda s: replace_once(s, "    return w * x\n", "    return (w * x).reshape(-1, 1)\n"),
                "forward", ", 1), expected ("),
    WrongReturn("forward-returns-string", lambda s: replace_once(s, "    return w * x\n", "    return 'w * x'\n"),
                "forward", "it is a str"),
    WrongReturn("loss-returns-vector",
                lambda s: replace_once(s, "return ((y_pred - y) ** 2).mean()", "return (y_pred - y) ** 2"),
                "loss", "single number"),
    WrongReturn("history-nan-inf",
                lambda s: replace_once(s, "history.append((w.item(), l.item()))",
                                       "history.append((float('nan'), float('inf')))"),
                "train:", "got "),
    WrongReturn("forward-nan", lambda s: replace_once(s, "    return w * x\n", "    return w * x * float('nan')\n"),
                "forward", "nan"),
]


@pytest.mark.parametrize("case", WRONG_RETURNS, ids=lambda c: c.id)
def test_wrong_return_fails_its_checks_with_a_message(grade_file, write, case: WrongReturn) -> None:
    report = grade_file("ex03", write("ex03", case.edit(solution("ex03"))))
    assert_clean(report)
    assert report.error is None
    failing = checks_of(report, case.function)
    assert failing
    for check in failing:
        if check.name.startswith("train calls"):  # the process check may still count backward() calls
            continue
        assert check.status is Status.FAILED and check.score == 0, (check.name, check.status, check.message)
        assert case.message in check.message.lower(), check.message
    others = [c for c in report.checks if not c.name.startswith(case.function) and not c.name.startswith("train")]
    assert all(c.passed for c in others), [(c.name, c.message) for c in others if not c.passed]


def test_nan_history_report_is_strict_json(grade_file, write) -> None:
    edited = replace_once(solution("ex03"), "history.append((w.item(), l.item()))",
                          "history.append((float('nan'), float('-inf')))")
    report = grade_file("ex03", write("ex03", edited))
    data = json.loads(to_json(report), parse_constant=refuse_constant)
    assert validation_errors(data) == []
    train = checks_of(report, "train: notebook")[0]
    assert train.first_divergent_epoch == 1
    assert "epoch 1" in train.message


# ---------------------------------------------------------------- exceptions, exits, input(), hangs


@pytest.mark.parametrize("exercise_id", ["ex01", "ex03"])
def test_exception_in_train_points_at_the_students_line(grade_file, write, exercise_id: str) -> None:
    if exercise_id not in exercises.exercise_ids():
        pytest.skip(f"{exercise_id} is not registered yet")
    source = in_train(solution(exercise_id), "raise ValueError('learning rate too small')")
    report = grade_file(exercise_id, write(exercise_id, source))
    assert_clean(report)
    line = line_of(source, "learning rate too small")
    train = checks_of(report, "train")
    assert train
    for check in train:
        assert check.status is Status.ERROR and check.score == 0
        assert "ValueError: learning rate too small" in check.message
        assert f"{exercise_id}.py, line {line}, in train" in check.message, check.message
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))


def test_exception_deep_in_torch_names_the_students_frame(grade_file, write) -> None:
    source = in_train(solution("ex03"), "torch.ones(3) @ torch.ones(4)")
    report = grade_file("ex03", write("ex03", source))
    assert_clean(report)
    line = line_of(source, "torch.ones(3) @ torch.ones(4)")
    check = checks_of(report, "train: notebook")[0]
    assert check.status is Status.ERROR
    assert "RuntimeError" in check.message and f"line {line}" in check.message, check.message


def test_wrong_signature_names_the_missing_parameter(grade_file, write) -> None:
    source = replace_once(solution("ex03"), "def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):",
                          "def train(x, y, w=0.0, lr=0.01, epochs=100):")
    source = source.replace("learning_rate * w.grad", "lr * w.grad").replace("range(n_iters)", "range(epochs)")
    report = grade_file("ex03", write("ex03", source))
    assert_clean(report)
    train = checks_of(report, "train")
    assert train and all(c.status is Status.ERROR for c in train)
    named = re.compile(r"train\(\) got an unexpected keyword argument '(learning_rate|n_iters)'")
    assert all(named.search(c.message) for c in train), train[0].message


def test_input_at_import_does_not_hang(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", "name = input('Your name? ')\n" + solution("ex03")),
                        limits=Limits(timeout=20))
    assert_clean(report)
    assert report.score == 0
    assert all(c.status is Status.ERROR for c in report.checks)  # not timeout: stdin is closed, not waiting
    assert "input() is not available" in report.error and "line 1" in report.error, report.error


def test_input_inside_train_is_an_error_for_train_only(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", in_train(solution("ex03"), "input('continue? ')")),
                        limits=Limits(timeout=20))
    assert_clean(report)
    train = checks_of(report, "train")
    assert train and all(c.status is Status.ERROR for c in train)
    assert all("input() is not available" in c.message for c in train), train[0].message
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))


@pytest.mark.parametrize("exercise_id", ["ex01", "ex03"])
def test_sys_exit_at_import(grade_file, write, exercise_id: str) -> None:
    if exercise_id not in exercises.exercise_ids():
        pytest.skip(f"{exercise_id} is not registered yet")
    report = grade_file(exercise_id, write(exercise_id, "import sys\nsys.exit(3)\n" + solution(exercise_id)))
    assert_clean(report)
    assert report.score == 0
    assert "sys.exit()" in report.error and "line 2" in report.error, report.error


def test_sys_exit_inside_train_costs_train_only(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", in_train(solution("ex03"), "import sys; sys.exit(0)")))
    assert_clean(report)
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))
    train = checks_of(report, "train")
    assert train and all(c.score == 0 and "SystemExit" in c.message for c in train)
    assert all("remove the sys.exit()" in c.message for c in train), train[0].message


def test_os_exit_inside_train_is_a_graded_zero_for_what_was_left(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", in_train(solution("ex03"), "import os; os._exit(0)")))
    assert_clean(report)
    assert "os._exit()" in (report.error or ""), report.error
    train = checks_of(report, "train")
    assert train and all(c.status is Status.ERROR and c.score == 0 for c in train)
    # Results sent before the process vanished still count.
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))


def test_infinite_loop_times_out(grade_file, write) -> None:
    """The call is stopped within its own budget (issue 25): the train checks cost only themselves."""
    report = grade_file("ex03", write("ex03", in_train(solution("ex03"), "while True: pass")),
                        limits=Limits(timeout=3))
    assert_clean(report)
    train = checks_of(report, "train")
    assert train and all(c.status in (Status.TIMEOUT, Status.SKIPPED) and c.score == 0 for c in train)
    assert any(c.status is Status.TIMEOUT and "did not return within" in c.message for c in train)
    assert all(c.passed for c in checks_of(report, "forward(") + checks_of(report, "loss("))


def test_infinite_loop_at_import_times_out_every_check(grade_file, write) -> None:
    report = grade_file("ex03", write("ex03", "while True:\n    pass\n" + solution("ex03")),
                        limits=Limits(timeout=2))
    assert_clean(report)
    assert report.score == 0
    assert all(c.status is Status.TIMEOUT for c in report.checks)


def test_a_worker_survives_a_crashing_submission(grade_file, write) -> None:
    grade_file("ex03", write("ex03", in_train(solution("ex03"), "import os; os._exit(0)")))
    report = grade_file("ex03", write("ex03", solution("ex03")))
    assert report.full_marks


def test_memory_hog_is_stopped_with_a_message(grade_file, write) -> None:
    hog = "_hoard = []\n    while True: _hoard.append(bytearray(32 * 1024 * 1024))"
    report = grade_file("ex03", write("ex03", in_train(solution("ex03"), hog)),
                        limits=Limits(timeout=30, memory_mib=1024))
    assert_clean(report)
    assert "more than 1024 MiB" in (report.error or ""), report.error
    train = checks_of(report, "train")
    assert train and all(c.score == 0 for c in train)


def test_huge_output_is_capped_and_still_grades(grade_file, write) -> None:
    noisy = in_train(solution("ex03"), "print('epoch log ' * 10000)")
    report = grade_file("ex03", write("ex03", noisy))
    assert validation_errors(to_dict(report)) == []
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]
    assert len(report.output) < 70_000
    assert "output truncated" in report.output
