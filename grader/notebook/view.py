"""The feedback a notebook shows under the cell: an HTML fragment and the human table, from one report.

The fragment is the feedback page's content (formats/html.py: score, checks, first divergence, diagnosis
quoting the student's line, the hint that helps, the curves), made to live inside a notebook's page: its
CSS is scoped to one class, with no script and no external resource (the curves are inline SVG), and its
colours read in a light and a dark theme alike (text inherits the theme's colour; fills are translucent).
Without its <style> (a notebook opened untrusted loses it) it is still plain, readable HTML.

Honest totals: what `check` grades are the visible checks; the hidden checks' points are named, and said
to be graded at submission. Nothing says "all checks passed" while hidden points are ungraded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from grader.course import hints
from grader.formats import human
from grader.formats.html import STATUS_LABELS, esc, inline_markdown
from grader.model import sanitize
from grader.model.report import CheckResult, Report, Status
from grader.sandbox.tiers import Tier, rank

ROOT = "dlg-feedback"
STYLE = f"""
.{ROOT} {{ color-scheme: light dark; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: inherit; max-width: 1000px; --ok: #2da44e; --bad: #d1242f; --warn: #bf8700;
  --line: rgba(128, 128, 128, .35); --tint: rgba(128, 128, 128, .12); }}
.{ROOT} h3 {{ font-size: 1.1rem; margin: .2rem 0 .4rem; }}
.{ROOT} h4 {{ font-size: .95rem; margin: .9rem 0 .3rem; }}
.{ROOT} .muted {{ opacity: .75; font-size: .9em; }}
.{ROOT} .score {{ display: flex; align-items: center; gap: .8rem; margin: .3rem 0 .6rem; }}
.{ROOT} .big {{ font-size: 1.5rem; font-weight: 700; }}
.{ROOT} .bar {{ flex: 1; max-width: 320px; height: .6rem; background: var(--tint); border-radius: .3rem;
  overflow: hidden; }}
.{ROOT} .bar span {{ display: block; height: 100%; background: var(--ok); }}
.{ROOT} .badge {{ display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .78rem;
  font-weight: 600; color: #fff; white-space: nowrap; }}
.{ROOT} .passed {{ background: var(--ok); }} .{ROOT} .failed, .{ROOT} .error {{ background: var(--bad); }}
.{ROOT} .timeout, .{ROOT} .skipped, .{ROOT} .pending {{ background: var(--warn); }}
.{ROOT} .note {{ border-left: 4px solid var(--warn); background: var(--tint); padding: .4rem .8rem;
  margin: .4rem 0; }}
.{ROOT} .problem {{ border-left-color: var(--bad); white-space: pre-wrap; }}
.{ROOT} table.checks {{ border-collapse: collapse; width: 100%; table-layout: auto; margin: 0; }}
/* `table.checks` outranks a notebook's own table rules (JupyterLab right-aligns and stripes cells) */
.{ROOT} table.checks tbody tr, .{ROOT} table.checks thead tr {{ background: transparent; }}
.{ROOT} table.checks th, .{ROOT} table.checks td {{ text-align: left; vertical-align: top; padding: .3rem .45rem;
  border: none; border-bottom: 1px solid var(--line); color: inherit; background: transparent;
  line-height: 1.45; }}
.{ROOT} table.checks th {{ font-size: .8rem; opacity: .75; }}
.{ROOT} table.checks td.points {{ white-space: nowrap; font-variant-numeric: tabular-nums; }}
.{ROOT} .message {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
.{ROOT} code, .{ROOT} pre {{ font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .88em; background: var(--tint); color: inherit; border-radius: .2rem; }}
.{ROOT} code {{ padding: 0 .2rem; }}
.{ROOT} pre {{ padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; }}
.{ROOT} .hint {{ border: 1px solid var(--line); border-radius: .3rem; padding: .4rem .8rem; margin: .4rem 0; }}
.{ROOT} .curves {{ display: flex; flex-wrap: wrap; gap: .8rem; }}
.{ROOT} figure {{ margin: 0; }} .{ROOT} figcaption {{ font-size: .8rem; opacity: .8; max-width: 300px; }}
.{ROOT} svg {{ color: inherit; }}
"""
STUDENT_COLOUR, REFERENCE_COLOUR = "#e5534b", "#8a8f98"  # both readable on white and on near-black


@dataclass(frozen=True)
class Context:
    """What the notebook knows beyond the report: hidden checks' points, the functions not attempted."""

    hidden_checks: int | None = None  # None: not known on this machine (the wheel ships no hidden spec)
    hidden_points: float | None = None
    not_attempted: tuple[str, ...] = ()  # functions still the stub or not defined
    functions: tuple[str, ...] = ()
    probes: dict[str, str] = field(default_factory=dict)  # check name -> the function it calls
    submitted: bool = False  # the report of a submission: hidden checks were graded


def _points(value: float) -> str:
    return f"{value:g}"


def all_visible_passed(report: Report) -> bool:
    return bool(report.checks) and all(c.status is Status.PASSED for c in report.checks)


def verdict(report: Report, context: Context) -> str:
    """One line: the score and what it covers, honest about hidden points."""
    score = f"{_points(report.score)}/{_points(report.max_score)}"
    if context.submitted:
        return f"{report.exercise}: {score}" + (" (full marks)" if report.full_marks else "")
    if nothing_attempted(context):
        names = ", ".join(f"`{n}`" for n in context.not_attempted)
        return (f"{report.exercise}: not attempted yet ({names}: still the stub, or not defined in this "
                f"kernel); {_points(report.max_score)} points on the visible checks wait for you.")
    hidden = hidden_note(context)
    if all_visible_passed(report):
        return f"{report.exercise}: {score} on the visible checks, all of them passed; {hidden}"
    return f"{report.exercise}: {score} on the visible checks; {hidden}"


def nothing_attempted(context: Context) -> bool:
    return bool(context.not_attempted) and len(context.not_attempted) == len(context.functions)


def hidden_note(context: Context) -> str:
    if context.hidden_checks == 0:
        return "there are no hidden checks."
    if context.hidden_points is None:
        return "hidden checks (points not known here) are graded at submission."
    checks = "check" if context.hidden_checks == 1 else "checks"
    return (f"{context.hidden_checks} hidden {checks} worth {_points(context.hidden_points)} more points "
            "are graded at submission.")


def tier_note(report: Report) -> str | None:
    """Said when the sandbox here is weaker than its strongest tier (`grade doctor` explains why)."""
    tier = str(report.sandbox.get("tier", ""))
    if rank(tier) < 0 or rank(tier) >= rank(Tier.NAMESPACES):
        return None
    return (f"Graded at the \"{tier}\" sandbox tier: this machine has no user namespaces (as on some hosted "
            "notebooks); `grade doctor` says why. Your code still ran outside this kernel.")


def _collapsed(report: Report, context: Context) -> tuple[list[CheckResult], list[CheckResult]]:
    """The checks to show one by one, and those of functions not attempted (said once, together)."""
    skipped = set(context.not_attempted)
    shown, quiet = [], []
    for check in report.checks:
        function = context.probes.get(check.name)
        if check.status is not Status.PASSED and (function in skipped or
                                                  (function is None and skipped == set(context.functions))):
            quiet.append(check)
        else:
            shown.append(check)
    return shown, quiet


def not_attempted_line(quiet: list[CheckResult], context: Context) -> str | None:
    """The functions not attempted, said once (the verdict says it when none is)."""
    if not context.not_attempted or nothing_attempted(context):
        return None
    names = ", ".join(f"`{n}`" for n in context.not_attempted)
    points = sum(c.max_score for c in quiet)
    them = "it" if len(context.not_attempted) == 1 else "them"
    return (f"Not attempted yet: {names} (still the stub, or not defined in this kernel); "
            f"{len(quiet)} checks worth {_points(points)} points wait for {them}.")


def _row(report: Report, check: CheckResult) -> str:
    status = STATUS_LABELS[check.status]
    hidden = ' <span class="muted">(hidden)</span>' if check.visibility == "hidden" else ""
    details = ""
    if check.status is not Status.PASSED:
        details = f'<div class="message">{esc(check.message)}</div>'
        if check.diagnosis:
            helps = (f" · hint {check.hint} helps: <code>hint(\"{esc(report.exercise)}\", {check.hint})</code>"
                     if check.hint else "")
            details += f'<div class="muted">diagnosis: <code>{esc(check.diagnosis)}</code>{helps}</div>'
    return (f'<tr><td><span class="badge {status}">{status}</span></td>'
            f'<td class="points">{_points(check.score)} / {_points(check.max_score)}</td>'
            f"<td><strong>{esc(check.name)}</strong>{hidden}{details}</td></tr>")


def _hints(report: Report) -> str:
    wanted = sorted({c.hint for c in report.checks if c.hint and c.status is not Status.PASSED})
    by_number = {h.number: h for h in hints.load(report.exercise)}
    blocks = [f'<div class="hint"><strong>Hint {n} of {len(by_number)}</strong><br>'
              f"{inline_markdown(by_number[n].text)}</div>" for n in wanted if n in by_number]
    return "<h4>Hints that help</h4>" + "".join(blocks) if blocks else ""


def _polyline(values: list[float], epochs: int, low: float, high: float, width: float, height: float,
              log: bool) -> str:
    def y(value: float) -> float:
        v = math.log10(max(value, 1e-12)) if log else value
        lo, hi = (math.log10(max(low, 1e-12)), math.log10(max(high, 1e-12))) if log else (low, high)
        return height - 4 - (v - lo) / ((hi - lo) or 1.0) * (height - 8)

    points, runs = [], []
    for i, value in enumerate(values):
        if not math.isfinite(value):
            if points:
                runs.append(points)
            points = []
            continue
        x = 4 + i / max(epochs - 1, 1) * (width - 8)
        points.append(f"{x:.1f},{y(value):.1f}")
    if points:
        runs.append(points)
    return "".join(f'<polyline fill="none" points="{" ".join(run)}"/>' for run in runs)


def curves(report: Report) -> str:
    """The visible trajectory checks' curves (loss and w per epoch over the reference), as inline SVG."""
    from grader.formats import plot

    figures = []
    for panel in plot.panels(report)[:6]:
        for name in plot.rows([panel]):
            expected, observed = panel.expected.get(name, []), panel.observed.get(name, [])
            finite = [v for v in expected + observed if math.isfinite(v)]
            if not finite:
                continue
            log = name == "loss" and min(finite) > 0
            epochs = max(len(expected), len(observed))
            width, height = 300.0, 120.0
            low, high = min(finite), max(finite)
            marker = ""
            if panel.first_divergent_epoch and epochs > 1:
                x = 4 + (panel.first_divergent_epoch - 1) / (epochs - 1) * (width - 8)
                marker = (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height:.0f}" stroke="currentColor" '
                          'stroke-dasharray="2 3" opacity=".6"/>')
            label = f"{esc(name)}{' (log scale)' if log else ''}: {esc(panel.title)}"
            figures.append(
                f'<figure><svg width="{width:.0f}" height="{height:.0f}" '
                f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{label}">'
                f'<rect x=".5" y=".5" width="{width - 1:.0f}" height="{height - 1:.0f}" fill="none" '
                'stroke="currentColor" opacity=".3"/>'
                f'<g stroke="{REFERENCE_COLOUR}" stroke-width="3" opacity=".8">'
                f"{_polyline(expected, epochs, low, high, width, height, log)}</g>"
                f'<g stroke="{STUDENT_COLOUR}" stroke-width="1.6" stroke-dasharray="5 3">'
                f"{_polyline(observed, epochs, low, high, width, height, log)}</g>{marker}</svg>"
                f"<figcaption>{label}</figcaption></figure>")
    if not figures:
        return ""
    return ('<h4>Training curves</h4><p class="muted">Yours (red, dashed) over the reference (grey, solid), '
            "per epoch; the dotted line marks the first epoch that differs.</p>"
            f'<div class="curves">{"".join(figures)}</div>')


def html_fragment(report: Report, context: Context) -> str:
    """The feedback, inline: a <div> with its own scoped <style>; no script, no external resource."""
    report = hints.annotate(report)
    shown, quiet = _collapsed(report, context)
    share = report.score / report.max_score if report.max_score else 0.0
    if context.submitted:
        badge = ("passed", "full marks") if report.full_marks else ("failed", "not yet full marks")
    elif all_visible_passed(report):
        badge = ("pending", "visible checks passed; hidden checks at submission")
    else:
        badge = ("failed", "not yet")
    parts = [f'<div class="{ROOT}"><style>{STYLE}</style>',
             f"<h3>{esc(report.exercise)}: {esc(report.title)}</h3>",
             (f'<div class="score"><span class="big">{_points(report.score)} / {_points(report.max_score)}'
              f'</span><span class="bar" role="img" aria-label="{share:.0%} of the points"><span style="width: '
              f'{share * 100:.1f}%"></span></span><span class="badge {badge[0]}">{badge[1]}</span></div>'),
             f"<p>{inline_markdown(verdict(report, context))}</p>"]
    for note in (tier_note(report), not_attempted_line(quiet, context)):
        if note:
            parts.append(f'<div class="note">{inline_markdown(note)}</div>')
    if report.error:
        parts.append(f'<div class="note problem">{esc(report.error)}</div>')
    unsaid = [e for e in report.cell_errors if e not in (report.error or "")]
    if unsaid:
        items = "".join(f"<li>{esc(e)}</li>" for e in unsaid)
        parts.append('<div class="note">Cells that raised an error when the grader ran them (the cells after '
                     f"them still ran; \"cell N\" is <code>In [N]</code>):<ul>{items}</ul></div>")
    if shown:
        rows = "".join(_row(report, c) for c in shown)
        parts.append('<table class="checks"><thead><tr><th>Status</th><th>Points</th>'
                     f"<th>Check, message and diagnosis</th></tr></thead><tbody>{rows}</tbody></table>")
    parts += [_hints(report), curves(report)]
    if report.output.strip() and not all_visible_passed(report) and shown:
        lines = report.output.rstrip().splitlines()[-20:]
        parts.append(f"<h4>What your code printed while graded (last lines)</h4><pre>{esc(chr(10).join(lines))}</pre>")
    parts.append(f'<p class="muted">Graded outside this kernel, in the grader\'s sandbox '
                 f"({esc(report.sandbox.get('tier', '?'))}), on {esc(', '.join(report.devices) or '-')}: the cells "
                 'this kernel ran, in the order it ran them. "cell N" means <code>In [N]</code>.</p></div>')
    return "".join(p for p in parts if p)


def text(report: Report, context: Context) -> str:
    """The human table (formats/human.py) with the honest summary in place of its closing lines."""
    report = hints.annotate(report)
    shown, quiet = _collapsed(report, context)
    table = human.render(report.__class__(**{**report.__dict__, "checks": tuple(shown)}) if quiet else report)
    kept = [line for line in table.rstrip("\n").split("\n")
            if not line.startswith(("Score:", "Next step:", "All checks passed"))]
    lines = kept + [verdict(report, context)]
    for note in (tier_note(report), not_attempted_line(quiet, context)):
        if note:
            lines.append(note)
    return sanitize.text("\n".join(lines) + "\n")


def summary_line(report: Report, context: Context) -> str:
    """`check_all`'s one line per exercise."""
    return sanitize.text(verdict(report, context))


def context_for(report: Report, exercise: Any, defined: set[str], submitted: bool = False) -> Context:
    """The notebook's context for a report of `exercise` (an exercises.Exercise)."""
    functions = tuple(exercise.functions)
    probes = {c.name: c.probe for c in exercise.checks if c.probe in functions}
    stub_only = {probes.get(c.name) for c in report.checks
                 if c.diagnosis == "not-implemented" and probes.get(c.name)}
    failing_of = {f: [c for c in report.checks if probes.get(c.name) == f] for f in functions}
    not_attempted = tuple(f for f in functions if f not in defined or (
        f in stub_only and all(c.diagnosis == "not-implemented" for c in failing_of[f]
                               if c.status is not Status.PASSED)))
    hidden = [c for c in exercise.checks if c.visibility == "hidden"]
    known = exercise.hidden_available
    return Context(hidden_checks=len(hidden) if known else None,
                   hidden_points=float(sum(c.points for c in hidden)) if known else None,
                   not_attempted=() if submitted else not_attempted, functions=functions, probes=probes,
                   submitted=submitted)
