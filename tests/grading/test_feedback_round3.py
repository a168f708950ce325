"""Messages that are true and lead somewhere (issue 25): what the student's run did, the grader's own function
where it replaced theirs, another optimizer's rule named with its setting."""

from __future__ import annotations

import pytest
from conftest import SUBMISSIONS


def check_named(report, prefix):
    return next(c for c in report.checks if c.name.startswith(prefix))


@pytest.mark.slow
def test_a_substituted_helper_is_said_where_it_changed_the_numbers(grade_file):
    report = grade_file("ex01", SUBMISSIONS / "ex01" / "bug_gradient_sign_compensated.py")
    train = check_named(report, "train: notebook data")
    assert "the grader's own gradient() in place of yours" in train.message
    assert "not from your own" in train.message
    clean = grade_file("ex01", SUBMISSIONS / "ex01" / "bug_per_sample_updates.py")
    assert "in place of yours" not in check_named(clean, "train: notebook data").message  # its helpers pass


@pytest.mark.slow
def test_the_loss_as_the_step_is_described_as_what_it_did(grade_file):
    report = grade_file("ex02", SUBMISSIONS / "ex02" / "bug_loss_as_step.py")
    process = check_named(report, "minimize calls backward() every epoch")
    assert "w jumped from 10 to 0 in the first epoch" in process.message
    assert "learning_rate × the loss" in process.message and "no training at all" not in process.message
    assert all(c.diagnosis != "no-autograd" for c in report.checks)  # backward() gave w's gradient every epoch


@pytest.mark.slow
@pytest.mark.parametrize(("case", "named"), [
    ("bug_momentum", "momentum=0.9"), ("bug_nesterov", "nesterov=True"), ("bug_adam", "torch.optim.Adam"),
    ("bug_rmsprop", "torch.optim.RMSprop"), ("bug_adagrad", "torch.optim.Adagrad"),
    ("bug_per_sample_updates", "once per sample"),
])
def test_another_update_rule_is_named_with_its_setting(grade_file, case, named):
    report = grade_file("ex04", SUBMISSIONS / "ex04" / f"{case}.py")
    train = check_named(report, "train: notebook data")
    assert named in train.message
    process = check_named(report, "train updates w through torch.optim")
    assert process.passed and "points are yours" in process.message  # a real step is credited, and said so


@pytest.mark.slow
def test_a_w_data_history_is_told_data_is_not_a_copy(grade_file):
    report = grade_file("ex04", SUBMISSIONS / "ex04" / "bug_w_appended_live.py")
    train = check_named(report, "train: notebook data")
    assert train.diagnosis == "history-aliases-tensor" and "`w.data` is not a copy" in train.message


@pytest.mark.slow
def test_a_hard_coded_argument_is_named(grade_file):
    report = grade_file("ex02", SUBMISSIONS / "ex02" / "bug_hardcoded_square.py")
    check = check_named(report, "minimize: (w - 3)**2")
    assert check.diagnosis == "ignores-arguments" and "its `loss` argument" in check.message
    assert "not for the loss passed in ((w - 3)**2)" in check.message


@pytest.mark.slow
def test_the_loss_check_speaks_of_the_loss_not_the_gradient(grade_file):
    report = grade_file("ex03", SUBMISSIONS / "ex03" / "bug_sum_loss.py")
    loss = check_named(report, "loss(y, y_pred) at w = 0")
    assert loss.diagnosis == "gradient-not-averaged" and "Your gradient is" not in loss.message
    assert "The MSE is a mean" in loss.message
