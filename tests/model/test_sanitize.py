"""Nothing a submission controls reaches a screen, a page or a file raw (grader/model/sanitize.py).

A submission that prints escape codes (a payload that moves the cursor up and redraws the table as full
marks) and raises exceptions holding escape codes, a bidirectional override and a lone surrogate: the human
table, --html, the JSON report, Gradescope's and PrairieLearn's results hold none of them, and every one
of them is valid UTF-8 (a lone surrogate used to crash the table and the page).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.lms import autograder as lms
from grader.model import sanitize

HOSTILE = '''import sys
sys.stdout.write("\\x1b[2A\\x1b[2K\\rScore: 15/15   All checks passed \\u202e drawn backwards\\n")


def forward(w, x):
    raise ValueError("\\x1b[31mred\\x1b[0m, an override \\u202e and a lone \\ud800 surrogate\\rover")


def loss(y, y_pred):
    raise RuntimeError("\\x1b]0;a new window title\\x07\\x9b2J")
'''
FORBIDDEN = ("\x1b", "\r", "\u202e", "\x07", "\x9b")


def clean(text: str) -> None:
    assert not any(c in text for c in FORBIDDEN), [c for c in FORBIDDEN if c in text]
    text.encode("utf-8")  # no lone surrogate left
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_text_keeps_what_is_printable_and_drops_what_is_not():
    assert sanitize.text("w = 0.5\tloss = 1.2\nnext") == "w = 0.5\tloss = 1.2\nnext"
    assert sanitize.text("a\x1b[2Ab\r\nc\rd") == "a[2Ab\nc\nd"
    assert sanitize.text("x\ud800y\udfffz") == "x\ufffdy\ufffdz"
    assert sanitize.text("left\u202eright\u2066") == "leftright"
    assert sanitize.text("ünïcödé ✓ 数") == "ünïcödé ✓ 数"
    assert sanitize.deep({"a\x1b": ["\x00b", ("c\x9b",)], "n": 1.5}) == {"a": ["b", ["c"]], "n": 1.5}


def test_a_name_is_one_printable_line_with_what_it_holds_escaped():
    assert sanitize.name("José Ünïcödé 数.py") == "José Ünïcödé 数.py"
    assert sanitize.name(b"jos\xe9") == sanitize.name("jos\udce9") == "jos\\xe9"  # bytes that are not UTF-8
    assert sanitize.name("\x1b[2J\n15 of 15\r") == "\\x1b[2J\\n15 of 15\\r"
    assert sanitize.name("a\u202eb\ud800\x9b\t") == "a\\u202eb\\ud800\\x9b\\t"
    for hostile in ("\x1b[2J\n15 of 15", "x\udcff\u2028y", "\x00\x07"):
        shown = sanitize.name(hostile)
        assert shown.isprintable() and shown.encode("utf-8")


@pytest.mark.slow
def test_escape_codes_and_lone_surrogates_reach_no_format(tmp_path):
    path = tmp_path / "ex03.py"
    path.write_text(HOSTILE, "utf-8", errors="surrogatepass")
    page, report_path = tmp_path / "page.html", tmp_path / "report.json"
    result = CliRunner().invoke(main, ["ex03", str(path), "--device", "cpu", "--html", str(page),
                                       "--report", str(report_path)])
    assert result.exit_code == 1, result.output
    clean(result.stdout)
    assert "red" in result.stdout and "lone" in result.stdout  # the text is shown, only made harmless
    clean(page.read_bytes().decode("utf-8"))
    raw = report_path.read_bytes().decode("utf-8")
    report = json.loads(raw)
    clean(json.dumps(report, ensure_ascii=False))
    assert "Score: 15/15" in report["output"] and report["status"] == "ok"
    as_json = CliRunner().invoke(main, ["ex03", str(path), "--device", "cpu", "--format", "json"])
    clean(json.dumps(json.loads(as_json.stdout), ensure_ascii=False))

    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "ex03.py").write_bytes(path.read_bytes())
    gradescope = lms.run_gradescope("ex03", upload, tmp_path / "gs.json")
    prairielearn = lms.run_prairielearn("ex03", upload, tmp_path / "pl.json", reveal_hidden=True)
    for data, written in ((gradescope, tmp_path / "gs.json"), (prairielearn, tmp_path / "pl.json")):
        clean(json.dumps(data, ensure_ascii=False))
        clean(Path(written).read_bytes().decode("utf-8"))
