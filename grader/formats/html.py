"""One self-contained HTML page for a report: score, checks, diagnoses, the hints that help, the curves.

The page is a single file with inline CSS and the plot embedded as a base64 PNG: no script, no external
resource (a Content-Security-Policy says so too), so a student can open it offline and an instructor can
hand it back or print it. Everything that comes from the submission (its output, messages quoting its
code, its file name) is escaped. Without matplotlib the page is written without the plot.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from grader.course import hints
from grader.model import sanitize
from grader.model.report import CheckResult, Report, Status, totals

OUTPUT_LINES = 60  # the end of the submission's printed output shown on the page
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STATUS_LABELS = {
    Status.PASSED: "passed",
    Status.FAILED: "failed",
    Status.ERROR: "error",
    Status.TIMEOUT: "timeout",
    Status.SKIPPED: "skipped",
}

STYLE = """
:root { --ok: #1b7f3b; --bad: #b3261e; --warn: #8a5a00; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
.meta, .muted { color: var(--muted); font-size: .9rem; }
.score { display: flex; align-items: center; gap: 1rem; margin: 1rem 0; }
.score .big { font-size: 2rem; font-weight: 700; }
.bar { flex: 1; height: .8rem; background: #eef1f4; border-radius: .4rem; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--ok); }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: 1rem; font-size: .8rem; font-weight: 600;
         color: #fff; white-space: nowrap; }
.passed { background: var(--ok); } .failed, .error { background: var(--bad); }
.timeout, .skipped { background: var(--warn); }
.problem { border-left: 4px solid var(--bad); background: #fdf0ef; padding: .6rem 1rem; white-space: pre-wrap; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: .45rem .5rem; border-bottom: 1px solid var(--line); }
th { font-size: .85rem; color: var(--muted); }
td.points { white-space: nowrap; font-variant-numeric: tabular-nums; }
.message { white-space: pre-wrap; overflow-wrap: anywhere; }
.diagnosis { margin-top: .3rem; font-size: .9rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; }
code { background: #eef1f4; padding: 0 .2rem; border-radius: .2rem; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.hint { border: 1px solid var(--line); border-radius: .4rem; padding: .6rem 1rem; margin: .6rem 0; }
.hint h3 { font-size: 1rem; margin: 0 0 .3rem; }
img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); }
footer { margin-top: 2.5rem; }
@media print { body { margin: 0; max-width: none; } .bar { border: 1px solid var(--line); }
               tr, .hint, img.plot { break-inside: avoid; } }
"""


def esc(text: object) -> str:
    """Escaped for HTML, and first stripped of control characters and invalid code points (sanitize.py)."""
    return html.escape(sanitize.text(text), quote=True)


def inline_markdown(text: str) -> str:
    """Escaped text with `code` and **bold** spans: all the markup our hints use."""
    escaped = esc(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _points(value: float) -> str:
    return f"{value:g}"


def _check_row(report: Report, check: CheckResult) -> str:
    status = STATUS_LABELS[check.status]
    hidden = ' <span class="muted">(hidden)</span>' if check.visibility == "hidden" else ""
    details = ""
    if check.status is not Status.PASSED:
        details = f'<div class="message">{esc(check.message)}</div>'
        if check.diagnosis:
            helps = (f' · <a href="#hint-{check.hint}">hint {check.hint}</a> helps '
                     f"(<code>grade hint {esc(report.exercise)} -n {check.hint}</code>)") if check.hint else ""
            details += f'<div class="diagnosis">diagnosis: <code>{esc(check.diagnosis)}</code>{helps}</div>'
    elif check.message:
        details = f'<div class="muted">{esc(check.message)}</div>'
    return (f'<tr><td><span class="badge {status}">{status}</span></td>'
            f'<td class="points">{_points(check.score)} / {_points(check.max_score)}</td>'
            f"<td><strong>{esc(check.name)}</strong>{hidden}{details}</td></tr>")


def _hints_section(report: Report) -> str:
    wanted = sorted({c.hint for c in report.checks if c.hint and not c.passed})
    if not wanted:
        if report.full_marks or not hints.load(report.exercise):
            return ""
        return (f"<h2>Hints</h2><p>Stuck? <code>grade hint {esc(report.exercise)}</code> shows the next hint, "
                "from a nudge to nearly the answer.</p>")
    by_number = {h.number: h for h in hints.load(report.exercise)}
    blocks = []
    for number in wanted:
        hint = by_number.get(number)
        if hint is None:
            continue
        codes = sorted({c.diagnosis for c in report.checks if c.hint == number and c.diagnosis})
        blocks.append(f'<div class="hint" id="hint-{number}"><h3>Hint {number} of {len(by_number)}</h3>'
                      f'<div class="muted">helps with: {", ".join(f"<code>{esc(c)}</code>" for c in codes)}'
                      f"</div><p>{inline_markdown(hint.text)}</p></div>")
    if not blocks:
        return ""
    return "<h2>Hints that help</h2>" + "".join(blocks)


def _plot_section(report: Report) -> str:
    try:
        from grader.formats import plot

        if not plot.panels(report):
            return ""
        data = plot.png_bytes(report)
    except ModuleNotFoundError:
        return ('<h2>Training curves</h2><p class="muted">Not drawn: matplotlib is not installed '
                "(<code>pip install 'dl-grader[plot]'</code>).</p>")
    encoded = base64.b64encode(data).decode("ascii")
    return ("<h2>Training curves</h2><p class=\"muted\">Your loss and w per epoch (red, dashed) over the "
            "reference (grey), one column per variation; the dotted line marks the first epoch that "
            "differs. Hidden checks are never drawn.</p>"
            f'<img class="plot" alt="loss and w curves of your training runs against the reference" '
            f'src="data:image/png;base64,{encoded}">')


def _output_section(report: Report) -> str:
    if not report.output.strip():
        return ""
    lines = report.output.rstrip().splitlines()
    shown = lines[-OUTPUT_LINES:]
    note = f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else ""
    return f"<h2>What your program printed{note}</h2><pre>{esc(chr(10).join(shown))}</pre>"


def render(report: Report) -> str:
    """The whole page as a string."""
    report = hints.annotate(report)
    share = report.score / report.max_score if report.max_score else 0.0
    verdict = ('<span class="badge passed">all visible checks passed</span>' if report.full_marks and report.hidden_pending
               else '<span class="badge passed">full marks</span>' if report.full_marks
               else '<span class="badge failed">not yet full marks</span>')
    pending = (f'<div class="meta">{esc(totals(report))}</div>' if report.hidden_pending else "")
    problem = f'<h2>Problem</h2><div class="problem">{esc(report.error)}</div>' if report.error else ""
    rows = "".join(_check_row(report, c) for c in report.checks)
    versions = ", ".join(f"{esc(k)} {esc(v)}" for k, v in report.versions.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(report.exercise)}: {_points(report.score)}/{_points(report.max_score)}, {esc(report.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{esc(report.exercise)}: {esc(report.title)}</h1>
<div class="meta">Submission <code>{esc(report.submission.path)}</code> ({esc(report.submission.kind)},
sha256 <code>{esc(report.submission.sha256[:16])}</code>) · graded on {esc(", ".join(report.devices) or "-")}</div>
</header>
<section class="score"><span class="big">{_points(report.score)} / {_points(report.max_score)}</span>
<span class="bar" role="img" aria-label="{share:.0%} of the points"><span style="width: {share * 100:.1f}%"></span></span>
{verdict}{pending}</section>
{problem}
<h2>Checks</h2>
<table>
<thead><tr><th>Status</th><th>Points</th><th>Check, message and diagnosis</th></tr></thead>
<tbody>{rows}</tbody>
</table>
{_hints_section(report)}
{_plot_section(report)}
{_output_section(report)}
<footer class="muted">dl-grader {esc(report.grader_version)} · report schema {esc(report.schema_version)} ·
sandbox {esc(report.sandbox.get("tier", "?"))} · {versions} · references
<code>{esc(report.references_sha256[:16])}</code></footer>
</body>
</html>
"""


def write_html(report: Report, path: Path) -> None:
    """Write the page to `path` (the plot is left out, with a note, when matplotlib is missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), "utf-8")
