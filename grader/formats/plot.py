"""Loss and w curves of the student's training runs drawn over the reference's: one panel per variation.

Draws only what visible trajectory checks carry in `CheckResult.trajectory`; hidden checks never carry a
reference out of the grader and are never drawn. matplotlib is an optional extra: it is imported only
when a picture is asked for (Agg, through the object API: no pyplot, no display, no global state), and
`ModuleNotFoundError` tells the caller it is missing.
"""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.model.report import CheckResult, Report, Status

MAX_EPOCHS = 100_000  # the channel's own cap on a list; more would only slow the drawing
# A diverged run is drawn at most this far out: beyond it the picture says nothing more, and matplotlib's
# log-axis tick arithmetic overflows near the float limit.
DRAWN_MAGNITUDE = 1e30
# Field order of the rows; a field not named here comes after these, in the order the check lists it.
ROW_ORDER = ("loss", "w", "grad")
ROW_LABELS = {"loss": "loss (log scale)", "w": "w", "grad": "gradient"}
STUDENT_COLOUR, REFERENCE_COLOUR, DIVERGENCE_COLOUR = "#d1495b", "#2e4057", "#edae49"
FORMATS = ("png", "svg", "pdf")  # what --plot writes, chosen by the file's suffix


@dataclass(frozen=True)
class Panel:
    """One variation (a visible trajectory check) and its curves, ready to draw."""

    title: str
    passed: bool
    first_divergent_epoch: int | None  # 1-based, as messages say it
    expected: dict[str, list[float]]
    observed: dict[str, list[float]]


def _floats(values: Any) -> list[float]:
    """Untrusted per-epoch numbers as floats; anything that is not a number becomes NaN (a gap)."""
    if not isinstance(values, (list, tuple)):
        return []
    out = []
    for value in values[:MAX_EPOCHS]:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        out.append(max(-DRAWN_MAGNITUDE, min(DRAWN_MAGNITUDE, number)) if math.isfinite(number) else math.nan)
    return out


def panels(report: Report) -> list[Panel]:
    """The variations to draw: visible trajectory checks that produced numbers, in report order."""
    chosen = []
    for check in report.checks:
        data = check.trajectory
        if check.visibility != "visible" or not isinstance(data, dict):
            continue
        fields = [f for f in data.get("fields") or [] if isinstance(f, str)]
        expected = {f: _floats((data.get("expected") or {}).get(f)) for f in fields}
        observed = {f: _floats((data.get("observed") or {}).get(f)) for f in fields}
        if not any(expected.values()):
            continue
        chosen.append(Panel(check.name, check.status is Status.PASSED, _divergence(check), expected, observed))
    return chosen


def _divergence(check: CheckResult) -> int | None:
    epoch = check.first_divergent_epoch
    return epoch if isinstance(epoch, int) and epoch >= 1 and check.status is not Status.PASSED else None


def rows(drawn: list[Panel]) -> list[str]:
    present: list[str] = []
    for panel in drawn:
        present += [f for f in panel.expected if f not in present]
    return sorted(present, key=lambda f: ROW_ORDER.index(f) if f in ROW_ORDER else len(ROW_ORDER))


def figure(report: Report) -> Any:
    """The matplotlib Figure (raises ModuleNotFoundError without matplotlib)."""
    from matplotlib.figure import Figure  # the object API renders with Agg and never opens a window

    drawn = panels(report)
    fields = rows(drawn)
    if not drawn:
        fig = Figure(figsize=(6.4, 1.6), dpi=110)
        fig.text(0.5, 0.5, f"{report.exercise}: no training curves to draw\n(no visible trajectory check "
                 "produced numbers; see the report's messages)", ha="center", va="center", fontsize=10)
        return fig
    fig = Figure(figsize=(4.4 * len(drawn) + 0.4, 2.6 * len(fields) + 1.0), dpi=110, layout="constrained")
    axes = fig.subplots(len(fields), len(drawn), squeeze=False, sharex="col")
    for column, panel in enumerate(drawn):
        for row, field in enumerate(fields):
            _draw(axes[row][column], panel, field, top=row == 0, bottom=row == len(fields) - 1)
    fig.suptitle(f"{report.exercise}: {report.title}: your run (red, dashed) over the reference (grey), "
                 f"score {report.score:g}/{report.max_score:g}", fontsize=11)
    return fig


def _draw(ax: Any, panel: Panel, field: str, top: bool, bottom: bool) -> None:
    expected, observed = panel.expected.get(field) or [], panel.observed.get(field) or []
    if top:
        verdict = "passed" if panel.passed else "FAILED"
        ax.set_title(f"{_wrap(panel.title)}  [{verdict}]", fontsize=9,
                     color="#1b7f3b" if panel.passed else STUDENT_COLOUR)
    ax.set_ylabel(ROW_LABELS.get(field, field), fontsize=9)
    if bottom:
        ax.set_xlabel("epoch", fontsize=9)
    if not expected:
        ax.text(0.5, 0.5, f"no {field} here", transform=ax.transAxes, ha="center", va="center")
        return
    ax.plot(range(1, len(expected) + 1), expected, color=REFERENCE_COLOUR, lw=2.4, alpha=0.6, label="reference")
    if observed:
        ax.plot(range(1, len(observed) + 1), observed, color=STUDENT_COLOUR, lw=1.2, ls="--",
                marker="." if len(observed) <= 40 else None, label="yours")
    else:
        ax.text(0.5, 0.12, "your run returned no numbers", transform=ax.transAxes, ha="center", fontsize=8)
    _scale(ax, field, expected, observed)
    epoch = panel.first_divergent_epoch
    if epoch is not None:
        ax.axvline(epoch, color=DIVERGENCE_COLOUR, lw=1.5, ls=":", label=f"first divergence (epoch {epoch})")
        if epoch <= len(observed) and math.isfinite(observed[epoch - 1]):
            ax.plot([epoch], [observed[epoch - 1]], "o", ms=7, mfc="none", mec=DIVERGENCE_COLOUR, mew=2)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelsize=8)
    if top:
        ax.legend(fontsize=7, loc="best")


def _scale(ax: Any, field: str, expected: list[float], observed: list[float]) -> None:
    """Loss on a log scale; w on a linear one unless a diverging run would flatten the reference."""
    finite = [abs(v) for v in expected + observed if math.isfinite(v)]
    if field == "loss":
        if any(v > 0 for v in finite):
            ax.set_yscale("log", nonpositive="mask")
        return
    reference = [abs(v) for v in expected if math.isfinite(v)]
    if finite and reference and max(finite) > 1e3 * max(1.0, max(reference)):
        ax.set_yscale("symlog", linthresh=max(1.0, max(reference)), linscale=3)  # room for the reference
        ax.set_ylabel(f"{ROW_LABELS.get(field, field)} (symmetric log)", fontsize=9)


def _wrap(text: str, width: int = 46) -> str:
    lines = textwrap.wrap(text, width) or [""]
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def png_bytes(report: Report) -> bytes:
    """The picture as PNG bytes (for embedding); raises ModuleNotFoundError without matplotlib."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a student's extreme numbers must not spill matplotlib warnings on the CLI
        warnings.simplefilter("ignore")
        figure(report).savefig(buffer, format="png")
    return buffer.getvalue()


def image_bytes(report: Report, image_format: str = "png") -> bytes:
    """The picture in one of FORMATS; raises ModuleNotFoundError without matplotlib."""
    if image_format not in FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose from {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Fixed metadata: the same report gives the same bytes (no creation date, no tool version in SVG/PDF).
        metadata = {"Date": None} if image_format == "svg" else ({"CreationDate": None} if image_format == "pdf"
                                                                  else None)
        figure(report).savefig(buffer, format=image_format, metadata=metadata)
    return buffer.getvalue()


def write_plot(report: Report, path: Path) -> None:
    """Write the picture to `path` in the format its suffix names (.png, .svg, .pdf; ValueError for any other).
    Raises ModuleNotFoundError without matplotlib; the CLI turns it into a note."""
    path = Path(path)
    data = image_bytes(report, path.suffix.lower().lstrip("."))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
