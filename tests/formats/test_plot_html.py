"""The --plot picture and the --html page: what they draw and show, what they never leak, and without matplotlib."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.formats import html, plot
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPOCHS = 30
REFERENCE_LOSS = [30.0 * 0.5 ** e for e in range(EPOCHS)]
REFERENCE_W = [2.0 - 2.0 * 0.7 ** (e + 1) for e in range(EPOCHS)]
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def trajectory(loss: list, w: list) -> dict:
    return {"fields": ["loss", "w"], "expected": {"loss": REFERENCE_LOSS, "w": REFERENCE_W},
            "observed": {"loss": loss, "w": w}}


def sample_report(**changes) -> Report:
    diverging_w = [REFERENCE_W[0]] + [REFERENCE_W[e] * 1.4 for e in range(1, EPOCHS)]
    checks = (
        CheckResult("forward(w, x)", Status.PASSED, 1, 1, "matches the reference."),
        CheckResult("train: notebook data", Status.FAILED, 0, 3,
                    f"first divergence at epoch 2: w expected 0.555, got 0.855. {HOSTILE}",
                    diagnosis="grad-not-zeroed", first_divergent_epoch=2,
                    trajectory=trajectory([v * 1.1 for v in REFERENCE_LOSS], diverging_w)),
        CheckResult("train: Y = 5X", Status.PASSED, 2, 2, "all quantities match.",
                    trajectory=trajectory(REFERENCE_LOSS, REFERENCE_W)),
        # a hidden check must never be drawn, even if something put plotting data on it
        CheckResult("train: secret variation", Status.FAILED, 0, 2, "differs.", visibility="hidden",
                    diagnosis="grad-not-zeroed", first_divergent_epoch=2,
                    trajectory=trajectory(REFERENCE_LOSS, [123.0] * EPOCHS)),
    )
    fields = {"exercise": "ex03", "title": "Linear regression with autograd",
                  "submission": Submission(f"work/{HOSTILE}.py", "ab" * 32, "py", 10), "checks": checks,
                  "devices": ("cpu",), "grader_version": "0.1.0", "versions": {"numpy": "2"},
                  "sandbox": {"tier": "process"}, "output": f"Epoch 1: w = 0.300\n{HOSTILE}\n",
                  "status": RunStatus.OK}
    fields.update(changes)
    return Report(**fields)


# ------------------------------------------------------------------ the picture


def test_only_visible_trajectories_become_panels():
    panels = plot.panels(sample_report())
    assert [p.title for p in panels] == ["train: notebook data", "train: Y = 5X"]
    assert panels[0].first_divergent_epoch == 2 and not panels[0].passed
    assert panels[1].first_divergent_epoch is None and panels[1].passed


def test_figure_has_a_column_per_variation_a_log_loss_row_and_the_divergence_marked():
    fig = plot.figure(sample_report())
    axes = [ax for ax in fig.axes if ax.get_title() or ax.get_ylabel()]
    assert len(axes) == 4  # 2 variations × (loss, w)
    loss_axes = [ax for ax in axes if ax.get_ylabel().startswith("loss")]
    assert len(loss_axes) == 2 and all(ax.get_yscale() == "log" for ax in loss_axes)

    def vertical_lines(ax) -> list[float]:
        return [line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1
                and len(line.get_xdata()) == 2]

    failed_column = next(ax for ax in axes if "notebook data" in ax.get_title())
    assert vertical_lines(failed_column) == [2]
    passed_column = next(ax for ax in axes if "Y = 5X" in ax.get_title())
    assert vertical_lines(passed_column) == []
    drawn = [list(line.get_ydata()) for ax in axes for line in ax.lines]
    assert [123.0] * EPOCHS not in drawn  # the hidden check's numbers


def test_write_plot_writes_a_png(tmp_path):
    target = tmp_path / "out" / "curves.png"
    plot.write_plot(sample_report(), target)
    assert target.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("observed", [
    {"loss": None, "w": None},
    {"loss": [None, "nan", True, 1e308, -5.0], "w": [float("inf")] * 3},
    {"loss": [], "w": [1.0] * (EPOCHS + 50)},
    {"loss": [0.0] * EPOCHS, "w": [1e30] * EPOCHS},  # converged to exactly 0 / exploded
])
def test_garbled_or_extreme_student_numbers_still_draw(tmp_path, observed):
    bad = CheckResult("train: odd", Status.FAILED, 0, 1, "x", first_divergent_epoch=1,
                      trajectory={"fields": ["loss", "w"], "expected": {"loss": REFERENCE_LOSS, "w": REFERENCE_W},
                                  "observed": observed})
    plot.write_plot(sample_report(checks=(bad,)), tmp_path / "odd.png")
    assert (tmp_path / "odd.png").read_bytes().startswith(PNG_MAGIC)


def test_a_report_without_curves_still_gets_a_picture(tmp_path):
    plot.write_plot(sample_report(checks=(sample_report().checks[0],)), tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes().startswith(PNG_MAGIC)


# ------------------------------------------------------------------ the page


def test_page_is_self_contained_and_escapes_student_text(tmp_path):
    target = tmp_path / "report.html"
    html.write_html(sample_report(), target)
    page = target.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch, nothing to run
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"]
    assert "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")  # only ever as escaped text
    assert page.count(html.esc(HOSTILE)) >= 3  # the message, the output and the file name, escaped
    # the picture decodes to a PNG
    encoded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page).group(1)
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)


def test_page_shows_score_checks_diagnoses_and_the_hint_that_helps():
    page = html.render(sample_report())
    assert "3 / 8" in page  # 1 + 2 of 1 + 3 + 2 + 2
    for name in ("forward(w, x)", "train: notebook data", "train: Y = 5X", "train: secret variation"):
        assert html.esc(name) in page
    assert "<code>grad-not-zeroed</code>" in page and "(hidden)" in page
    assert 'id="hint-2"' in page and 'href="#hint-2"' in page
    assert "Hints that help" in page and "helps:" not in page.split("Hints that help")[1].split("</div>")[0]
    assert "<code>w.grad.zero_()</code>" in page  # the hint's markdown code span


def test_full_marks_page_has_no_hints_section():
    passed = tuple(c for c in sample_report().checks if c.passed)
    page = html.render(sample_report(checks=passed, output=""))
    assert "full marks" in page and "Hints that help" not in page and "What your program printed" not in page


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ModuleNotFoundError


def test_without_matplotlib_the_page_omits_the_plot_and_the_plot_says_why(no_matplotlib, tmp_path):
    page = html.render(sample_report())
    assert "data:image/png" not in page and "matplotlib is not installed" in page
    assert "train: notebook data" in page
    with pytest.raises(ModuleNotFoundError):
        plot.write_plot(sample_report(), tmp_path / "x.png")


# ------------------------------------------------------------------ through the command line


@pytest.mark.slow
def test_cli_writes_plot_and_page_for_a_failing_submission(tmp_path):
    source = (ROOT / "solutions" / "ex03.py").read_text("utf-8").replace("w.grad.zero_()", "pass")
    work = tmp_path / "ex03.py"
    work.write_text(source, "utf-8")
    png, page = tmp_path / "curves.png", tmp_path / "report.html"
    result = CliRunner().invoke(main, ["ex03", str(work), "--device", "cpu", "--plot", str(png), "--html", str(page)])
    assert result.exit_code == 1, result.output
    assert png.read_bytes().startswith(PNG_MAGIC)
    text = page.read_text("utf-8")
    assert "data:image/png;base64," in text and "Hints that help" in text
    # hidden references never reach the page: no hidden expected value is revealed in it
    assert "expected a different value" in text


@pytest.mark.slow
def test_cli_without_matplotlib_grades_and_notes_it(tmp_path, no_matplotlib):
    work = tmp_path / "ex03.py"
    work.write_text((ROOT / "solutions" / "ex03.py").read_text("utf-8"), "utf-8")
    png, page = tmp_path / "curves.png", tmp_path / "report.html"
    result = CliRunner().invoke(main, ["ex03", str(work), "--device", "cpu", "--plot", str(png), "--html", str(page)])
    assert result.exit_code == 0
    assert "note: plot not written: matplotlib is not installed" in result.output  # stderr is mixed in here
    assert not png.exists() and "data:image/png" not in page.read_text("utf-8")


def test_a_failure_without_a_diagnosis_still_points_at_the_hints():
    failed = CheckResult("loss(y, y_pred)", Status.FAILED, 0, 1, "expected 30, got 7.5.")
    page = html.render(sample_report(checks=(failed,)))
    assert "Hints that help" not in page and "<code>grade hint ex03</code> shows the next hint" in page
