"""Devices: cuda grading (skipped without a GPU), `auto` on a CPU-only machine, and TF32 kept off.

The TF32 test needs no GPU: the flags exist in every torch build, and the grader must reset them
before each probe whatever the submission set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cuda_available, requires_cuda

from grader.cli.main import main
from grader.grading import pipeline as grading
from grader.model.report import to_dict, validation_errors

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "ex03.py"

pytestmark = pytest.mark.slow

# Each function checks the TF32 switches on entry and returns a wrong answer when any is on, then turns
# them on again, so only a grader that resets them before every probe gets full marks.
TF32_CHEATER = '''
import torch


def _tf32_on():
    return (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
            or torch.get_float32_matmul_precision() != "highest")


def _turn_tf32_on():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")


_turn_tf32_on()


def forward(w, x):
    wrong = _tf32_on()
    _turn_tf32_on()
    return w * x + (1.0 if wrong else 0.0)


def loss(y, y_pred):
    wrong = _tf32_on()
    _turn_tf32_on()
    return ((y_pred - y) ** 2).mean() + (1.0 if wrong else 0.0)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    wrong = _tf32_on()
    _turn_tf32_on()
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item() + (1.0 if wrong else 0.0)))
    return history
'''


# Turns TF32 on inside train, mid-run, and answers wrongly if that took effect: only a lock holds.
TF32_MID_RUN = TF32_CHEATER.replace(
    "        history.append((w.item(), l.item() + (1.0 if wrong else 0.0)))",
    "        _turn_tf32_on()\n        history.append((w.item(), l.item() + (1.0 if _tf32_on() else 0.0)))")


def test_tf32_stays_off_even_when_train_turns_it_on_mid_run(grade_file, tmp_path: Path) -> None:
    assert TF32_MID_RUN != TF32_CHEATER
    path = tmp_path / "ex03.py"
    path.write_text(TF32_MID_RUN, "utf-8")
    report = grade_file("ex03", path)
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]


def test_auto_on_this_machine_grades_where_cuda_is(grade_file) -> None:
    report = grade_file("ex03", SOLUTION, device="auto")
    expected = ["cpu", "cuda"] if cuda_available() else ["cpu"]
    assert list(report.devices) == expected
    assert report.full_marks
    assert all(c.device == ",".join(expected) for c in report.checks)
    assert validation_errors(to_dict(report)) == []


def test_cpu_is_recorded_in_every_check(grade_file) -> None:
    report = grade_file("ex03", SOLUTION, device="cpu")
    assert report.devices == ("cpu",)
    assert report.checks and all(c.device == "cpu" for c in report.checks)


@pytest.mark.skipif(cuda_available(), reason="checks the CPU-only answer to --device auto")
def test_cli_auto_without_cuda_reports_cpu_only(workers, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(grading, "start_worker",
                        lambda exercise_id, device="auto": _Borrowed(workers.get("ex03", True)))
    result = CliRunner().invoke(main, ["ex03", str(SOLUTION), "--device", "auto", "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["devices"] == ["cpu"]
    assert {c["device"] for c in data["checks"]} == {"cpu"}


def test_numpy_exercise_grades_on_cpu_whatever_is_asked(grade_file) -> None:
    report = grade_file("ex01", ROOT / "solutions" / "ex01.py", device="auto")
    assert report.devices == ("cpu",)
    assert report.full_marks


def test_tf32_is_off_in_every_probe_whatever_the_submission_sets(grade_file, tmp_path: Path) -> None:
    path = tmp_path / "ex03.py"
    path.write_text(TF32_CHEATER, "utf-8")
    report = grade_file("ex03", path, device="cpu")
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]


@requires_cuda
@pytest.mark.cuda
def test_tf32_is_off_on_cuda(grade_file, tmp_path: Path) -> None:
    path = tmp_path / "ex03.py"
    path.write_text(TF32_CHEATER, "utf-8")
    report = grade_file("ex03", path, device="cuda")
    assert report.devices == ("cuda",)
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("exercise_id", ["ex02", "ex03", "ex04", "ex05"])
def test_cuda_solution_gets_full_marks_on_cuda(grade_file, exercise_id: str) -> None:
    # A CUDA worker warms torch.nn/optim before it forks but runs no backward() there (a forked child could not
    # restart autograd's device threads): every torch exercise's backward and optimizer must work in the child.
    report = grade_file(exercise_id, SOLUTION.with_name(f"{exercise_id}.py"), device="cuda")
    assert report.devices == ("cuda",)
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]
    assert report.checks and all(c.device == "cuda" for c in report.checks)
    assert validation_errors(to_dict(report)) == []


def cpu_only_submission(tmp_path: Path) -> Path:
    """The solution with a helper tensor made on the CPU: fine on the CPU, a device mismatch on a GPU."""
    source = SOLUTION.read_text("utf-8")
    edited = source.replace("y_pred = forward(w, x)", "y_pred = forward(w, x) * torch.ones(len(x))", 1)
    assert edited != source
    path = tmp_path / "ex03.py"
    path.write_text(edited, "utf-8")
    return path


def test_cpu_only_tensors_are_fine_on_the_cpu(grade_file, tmp_path: Path) -> None:
    report = grade_file("ex03", cpu_only_submission(tmp_path), device="cpu")
    assert report.full_marks, [(c.name, c.message) for c in report.checks if not c.passed]


@requires_cuda
@pytest.mark.cuda
def test_cpu_only_tensors_fail_on_cuda_with_a_message(grade_file, tmp_path: Path) -> None:
    report = grade_file("ex03", cpu_only_submission(tmp_path), device="cuda")
    assert validation_errors(to_dict(report)) == []
    train = [c for c in report.checks if c.name.startswith("train")]
    assert train and all(c.score == 0 for c in train)
    assert all("device" in c.message.lower() for c in train), [c.message for c in train]
    assert "cuda" in report.devices


class _Borrowed:
    """The session's worker lent to the CLI, which closes what it is given."""

    def __init__(self, worker):
        self._worker = worker

    def __getattr__(self, name: str):
        return getattr(self._worker, name)

    def close(self) -> None:
        pass
