"""Feedback from a batch: each student's page beside their report, and one class page for the instructor.

A student's page is the `--html` page of their report (grader/formats/html.py). Hidden checks are shown
as the instructor chooses: `outcome` (the default) keeps their name, status and points but withholds the
message, the diagnosis and the hint, which could give a hidden input away; `full` shows everything (after
publication, say).

The class page (OUT/class.html) is one self-contained file, like the student pages (inline CSS, plots
embedded, no script, everything from a submission escaped): per exercise the score distribution, the
checks failed most (runs that crashed, hung or never started counted apart: they failed no check on its
merits), the diagnosis histogram with a plot, the similar pairs side by side, and a table of students
linking to each page. Without matplotlib the plots are left out with a note.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from grader.classroom import gradebook
from grader.formats import html
from grader.model.report import Report, from_dict, student_view

HIDDEN_CHOICES = ("outcome", "full")
CLASS_PAGE = "class.html"
CODE_LINES = 400  # lines of each file shown side by side


def student_report(report: Report, hidden: str = "outcome") -> Report:
    """The report as its student may see it: the one student view (report.student_view) unless `full`."""
    return report if hidden == "full" else student_view(report)


def write_student_pages(out: Path, hidden: str = "outcome") -> list[Path]:
    """OUT/<student>/<EX>.html for every report under OUT whose page is missing or older than it."""
    written = []
    for report_path in sorted(Path(out).glob("*/ex*.json")):
        exercise_id = report_path.name.removesuffix(".json")
        if "." in exercise_id:
            continue  # ex03.problem.json
        page = report_path.with_suffix(".html")
        try:
            if page.exists() and page.stat().st_mtime >= report_path.stat().st_mtime \
                    and page.read_text("utf-8").count(f'data-hidden="{hidden}"'):
                continue
            report = from_dict(json.loads(report_path.read_text("utf-8")))
            text = html.render(student_report(report, hidden))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report that is not one is the gradebook's business, not the page's
        text = text.replace("<body>", f'<body data-hidden="{hidden}">', 1)
        from grader.formats.files import write_atomic

        write_atomic(page, text)
        written.append(page)
    return written


# ---- the class page

def _plot_png(draw: Any) -> str | None:
    """A small bar chart as a data: URL, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    figure, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    try:
        draw(ax)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(url: str | None, alt: str) -> str:
    if url is None:
        return ('<p class="muted">Plot not drawn: matplotlib is not installed '
                "(<code>pip install 'dl-grader[plot]'</code>).</p>")
    return f'<img class="plot" alt="{html.esc(alt)}" src="{url}">'


def _distribution(exercise_id: str, dist: dict[str, Any]) -> str:
    scores = {float(k): v for k, v in dist["scores"].items()}

    def draw(ax: Any) -> None:
        ax.bar([f"{k:g}" for k in scores], list(scores.values()), color="#4c72b0")
        ax.set_xlabel(f"score (of {dist['max_score']:g})")
        ax.set_ylabel("students")
        ax.yaxis.get_major_locator().set_params(integer=True)

    bands = "".join(f"<td>{html.esc(v)}</td>" for v in dist["bands"].values())
    heads = "".join(f"<th>{html.esc(k)}</th>" for k in dist["bands"])
    mean = "-" if dist["mean"] is None else f"{dist['mean']:g}"
    median = "-" if dist["median"] is None else f"{dist['median']:g}"
    return (f"<h3>Scores</h3><p>{dist['graded']} reports, mean {mean}, median {median} of "
            f"{dist['max_score']:g}; {dist['full_marks']} with full marks.</p>"
            f"<table><thead><tr>{heads}</tr></thead><tbody><tr>{bands}</tr></tbody></table>"
            + _image(_plot_png(draw), f"{exercise_id} score distribution"))


def _counts_table(rows: list[dict[str, Any]], key: str, heading: str) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td>{r['count']}</td><td><code>{html.esc(r[key])}</code></td></tr>" for r in rows)
    return f"<table><thead><tr><th>students</th><th>{html.esc(heading)}</th></tr></thead><tbody>{body}</tbody></table>"


def _diagnoses(exercise_id: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<h3>Diagnoses</h3><p class=\"muted\">No mistake was named.</p>"

    def draw(ax: Any) -> None:
        ordered = rows[::-1]
        ax.barh([r["diagnosis"] for r in ordered], [r["count"] for r in ordered], color="#c44e52")
        ax.set_xlabel("students")
        ax.xaxis.get_major_locator().set_params(integer=True)

    return ("<h3>Diagnoses</h3>" + _counts_table(rows, "diagnosis", "diagnosis")
            + _image(_plot_png(draw), f"{exercise_id} diagnosis histogram"))


def _highlight(code: str, spans: list[list[int]] | list[tuple[int, int]]) -> str:
    """The code, escaped, with the shared spans marked; cut to CODE_LINES lines."""
    pieces, position = [], 0
    for start, end in sorted((int(a), int(b)) for a, b in spans):
        start, end = max(start, position), max(end, position)
        pieces.append(html.esc(code[position:start]))
        pieces.append(f"<mark>{html.esc(code[start:end])}</mark>")
        position = end
    pieces.append(html.esc(code[position:]))
    text = "".join(pieces)
    lines = text.split("\n")
    return "\n".join(lines[:CODE_LINES]) + ("\n…" if len(lines) > CODE_LINES else "")


def _similar(exercise_id: str, similarity: dict[str, Any] | None) -> str:
    if similarity is None:
        return ""
    entry = similarity.get("exercises", {}).get(exercise_id)
    if not entry:
        return ""
    pairs = entry["pairs"]
    head = (f"<h3>Similar submissions</h3><p>{entry['compared']} compared; {len(pairs)} pair(s) share at least "
            f"{similarity['threshold']:.0%} of either file's code (the stub left out). Evidence to look at, "
            "not a verdict.</p>")
    blocks = []
    for pair in pairs:
        blocks.append(
            f"<details><summary>{pair['similarity']:.0%}: <strong>{html.esc(pair['first'])}</strong> and "
            f"<strong>{html.esc(pair['second'])}</strong> ({pair['overlap_tokens']} tokens shared)</summary>"
            '<div class="side">'
            f"<div><h4>{html.esc(pair['first'])} ({pair['shares'][0]:.0%} shared)</h4>"
            f"<pre>{_highlight(pair['first_code'], pair['first_spans'])}</pre></div>"
            f"<div><h4>{html.esc(pair['second'])} ({pair['shares'][1]:.0%} shared)</h4>"
            f"<pre>{_highlight(pair['second_code'], pair['second_spans'])}</pre></div>"
            "</div></details>")
    return head + "".join(blocks)


def _student_table(out: Path, summary_rows: list[dict[str, Any]], exercise_ids: list[str]) -> str:
    heads = "".join(f"<th>{html.esc(e)}</th>" for e in exercise_ids)
    body = []
    for row in summary_rows:
        student = row["student"]
        cells = []
        for exercise_id in exercise_ids:
            score = row.get(exercise_id, "")
            page = out / student / f"{exercise_id}.html"
            text = html.esc(score) if score != "" else '<span class="muted">-</span>'
            if page.is_file():
                text = f'<a href="{quote(student)}/{exercise_id}.html">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr><td>{html.esc(row.get('name') or student)}</td>{''.join(cells)}"
                    f"<td>{html.esc(row.get('status', ''))}</td></tr>")
    return (f"<table><thead><tr><th>student</th>{heads}<th>status</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


EXTRA_STYLE = """
.side { display: grid; grid-template-columns: 1fr 1fr; gap: .75rem; }
.side pre { max-height: 40rem; overflow: auto; }
mark { background: #ffe58a; }
details { border: 1px solid var(--line); border-radius: .4rem; padding: .4rem .8rem; margin: .5rem 0; }
h4 { margin: .3rem 0; font-size: .95rem; }
"""


def render(out: Path, summary: dict[str, Any], gradebook_rows: list[dict[str, Any]],
           similarity: dict[str, Any] | None = None) -> str:
    """The class page as a string."""
    exercise_ids = list(summary.get("exercises", {}))
    sections = []
    for exercise_id, dist in summary.get("exercises", {}).items():
        failed = [f for f in summary.get("failed_checks", []) if f["exercise"] == exercise_id][:10]
        errors = [f for f in summary.get("check_errors", []) if f["exercise"] == exercise_id][:10]
        not_run = [n for n in summary.get("not_run", []) if n["exercise"] == exercise_id]
        diagnoses = [d for d in summary.get("diagnoses", []) if d["exercise"] == exercise_id]
        part = [f'<h2 id="{html.esc(exercise_id)}">{html.esc(exercise_id)}</h2>', _distribution(exercise_id, dist),
                "<h3>Checks failed most</h3>",
                _counts_table(failed, "check", "check") or '<p class="muted">No check failed.</p>']
        if errors:
            part.append("<h4>Checks that raised or timed out (not counted as failed)</h4>"
                        + _counts_table(errors, "check", "check"))
        if not_run:
            part.append("<h4>Runs that did not finish (crashed, hung, did not import): counted apart</h4>"
                        + _counts_table(not_run, "status", "status"))
        part += [_diagnoses(exercise_id, diagnoses), _similar(exercise_id, similarity)]
        sections.append("".join(part))
    skipped = summary.get("skipped_files") or []
    skipped_html = ""
    if skipped:
        items = "".join(f"<tr><td><code>{html.esc(s['path'])}</code></td><td>{html.esc(s['reason'])}</td></tr>"
                        for s in skipped)
        skipped_html = (f"<h2>Not graded ({len(skipped)} entries of the class folder)</h2><table><thead><tr>"
                        f"<th>entry</th><th>why</th></tr></thead><tbody>{items}</tbody></table>")
    statuses = ", ".join(f"{html.esc(k)} ×{v}" for k, v in summary.get("statuses", {}).items()) or "none"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Class results</title>
<style>{html.STYLE}{EXTRA_STYLE}</style>
</head>
<body>
<h1>Class results</h1>
<div class="meta">{summary.get('students', 0)} students · layout {html.esc(summary.get('layout', 'folders'))} ·
not graded cleanly: {statuses} · dl-grader {html.esc(summary.get('grader_version', ''))}</div>
{''.join(sections)}
<h2>Students</h2>
{_student_table(Path(out), gradebook_rows, exercise_ids)}
{skipped_html}
</body>
</html>
"""


def write_class_page(out: Path, summary: dict[str, Any], similarity: dict[str, Any] | None = None) -> Path:
    """OUT/class.html from the summary, the gradebook and (when run) the similarity results."""
    import csv

    out = Path(out)
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    try:
        roster = json.loads((out / "roster.json").read_text("utf-8")).get("students", {})
    except (OSError, ValueError, AttributeError):
        roster = {}
    for row in rows:
        student = row["student"]
        if student.startswith("'") and student[1:].startswith(gradebook.FORMULA_STARTS):
            student = student[1:]  # csv_cell's guard, taken off again
        row["student"] = student
        row["name"] = (roster.get(student) or {}).get("name") if isinstance(roster, dict) else None
    from grader.formats.files import write_atomic

    path = out / CLASS_PAGE
    write_atomic(path, render(out, summary, rows, similarity))
    return path
