"""A total parent: whatever a submission sends or is, the trusted side ends in a valid report, exit 0 or 1.

The channel's bytes (huge integers, 1e400, 100,000-deep arrays, non-finite counts), the file (parser and
compiler bombs, random bytes as .py or .ipynb), the upload (1,100 nested folders); and where the grader
itself fails, exit 3 with a report whose status says so. The decoder and the reader are fuzzed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from grader.cli.main import main
from grader.course import exercises
from grader.course.submission import read
from grader.grading import checks, compare
from grader.lms import autograder as lms
from grader.model.report import RUN_STATUSES, SCHEMA_VERSION, to_dict, validation_errors
from grader.sandbox.channel import ChannelError, decode, encode
from grader.sandbox.protocol import parse_message

ROOT = Path(__file__).resolve().parents[2]
HELLO = b'{"type":"hello","tier":{"tier":"none"}}\n'


def valid(report) -> dict:
    data = json.loads(json.dumps(to_dict(report), allow_nan=False))
    assert validation_errors(data) == [], validation_errors(data)
    assert data["schema_version"] == SCHEMA_VERSION and data["status"] in RUN_STATUSES
    return data


# ---------------------------------------------------------------- the channel


HOSTILE_LINES = {
    "400-digit integer": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":' + b"9" * 400 + b"}}",
    "5000-digit integer": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":' + b"9" * 5000
                          + b"}}",
    "1e400": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":1e400}}',
    "-1e400": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":-1e400}}',
    "NaN literal": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":NaN}}',
    "Infinity literal": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":Infinity}}',
    "100,000-deep array": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":'
                          + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    "100,000-deep object": b'{"type":"result","a":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    "a very long float": b'{"type":"result","key":"k","device":"cpu","ok":true,"fields":{"value":0.'
                         + b"1" * 5000 + b"}}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_the_channel_rejects_before_parsing_what_breaks_its_rules(name):
    with pytest.raises(ChannelError):
        decode(HELLO + HOSTILE_LINES[name] + b"\n")


def test_what_the_child_really_sends_still_passes():
    fields = {"w": [0.1, math.inf, -math.inf, math.nan], "rows": [[1.5e-300, -2.0]] * 3, "backward_calls": 100.0,
              "backward_leaves": [[[0.25, -1.5]], []], "event_order": "BSZ" * 10}
    message = {"type": "result", "key": "k", "device": "cpu", "ok": True, "fields": fields}
    decoded = decode(HELLO + encode(message) + encode({"type": "done"}))
    assert decoded[1]["fields"]["w"][1] == math.inf and math.isnan(decoded[1]["fields"]["w"][3])
    assert decoded[1]["fields"]["rows"] == [[1.5e-300, -2.0]] * 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_the_decoder_with_bytes(data):
    try:
        messages = decode(data)
    except ChannelError:
        return
    kinds = {"hello", "load_error", "result", "phase", "done"}
    assert all(isinstance(m, dict) and m["type"] in kinds for m in messages)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON, max_size=5), st.sampled_from(["hello", "result", "done", "load_error", "other"]) | JSON)
def test_fuzz_the_decoder_with_json_lines(values, kind):
    lines = [json.dumps({"type": kind, "key": "k", "device": "cpu", "ok": True, "fields": {"v": v}}) for v in values]
    try:
        messages = decode(HELLO + "\n".join(lines).encode() + b"\n")
    except ChannelError:
        return
    for message in messages:  # what passes holds only finite floats or the non-finite spellings' values
        _plain(message)


def _plain(value):
    if isinstance(value, dict):
        for item in value.values():
            _plain(item)
    elif isinstance(value, list):
        for item in value:
            _plain(item)
    else:
        assert value is None or isinstance(value, (bool, float, str)), value


@pytest.mark.parametrize("count", [math.inf, -math.inf, math.nan, 1e300, -1.0, "100", [1.0]])
def test_a_forged_process_count_fails_its_check_and_nothing_else(count):
    exercise = exercises.load("ex03")
    check = next(c for c in exercise.checks if c.compare == "process")
    reference = exercise.references()[check.key]
    observed = parse_message({"type": "result", "ok": True, "fields": {**reference["fields"], "backward_calls": count}})
    result = checks.evaluate(exercise, check, observed, reference, "cpu", None, False)
    assert result.score == 0 and result.status.value in ("failed", "error")


@pytest.mark.parametrize("at", [[math.nan, 0.0], [0.0, math.nan], [-math.inf, math.inf], [1.0], [1.0, "2"]])
def test_output_offsets_that_are_not_two_finite_numbers_label_nothing(at):
    observed = parse_message({"type": "result", "key": "k", "device": "cpu", "ok": True, "fields": {},
                              "output_at": at})
    assert observed.output_at is None


# ---------------------------------------------------------------- the file


BOMBS = {
    "unary minus 100,000 deep": "x = " + "- " * 100_000 + "1\n",
    "a 200,000-term sum": "x = " + "+".join(["1"] * 200_000) + "\n",
    "attributes 200,000 long": "x = a" + ".b" * 200_000 + "\n",
    "parentheses 100,000 deep": "x = " + "(" * 100_000 + "1" + ")" * 100_000 + "\n",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_parser_and_compiler_bombs_are_a_syntax_error_with_a_report(name, tmp_path):
    path = tmp_path / "ex03.py"
    path.write_text(BOMBS[name], "utf-8")
    loaded = read(path, "ex03")
    assert loaded.problem_status == "syntax-error" and loaded.problem.startswith("SyntaxError")
    result = CliRunner().invoke(main, ["ex03", str(path), "--format", "json", "--device", "cpu"])
    assert result.exit_code == 1, result.output[-2000:]
    data = json.loads(result.stdout)
    assert validation_errors(data) == [] and data["status"] == "syntax-error" and data["score"] == 0


@pytest.mark.parametrize("name", sorted(BOMBS)[:2])
def test_bombs_inside_a_notebook_cell_do_not_reach_the_parent(name, tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BOMBS[name]),
                                               nbformat.v4.new_code_cell("%matplotlib inline\n" + BOMBS[name])])
    path = tmp_path / "ex03.ipynb"
    path.write_text(nbformat.writes(notebook), "utf-8")
    loaded = read(path, "ex03")
    assert loaded.cells and loaded.problem is None  # the cells are run (and fail) in the child, as Jupyter would


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".py", ".ipynb"]))
def test_fuzz_the_reader(data, suffix, tmp_path):
    path = tmp_path / f"ex03{suffix}"
    path.write_bytes(data)
    loaded = read(path, "ex03")
    assert loaded.problem_status in (None, "unreadable", "syntax-error")
    assert (loaded.problem is None) == (loaded.problem_status is None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.text(max_size=200), max_size=4))
def test_fuzz_the_notebook_reader_with_cell_sources(cells, tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "ex03.ipynb"
    path.write_text(nbformat.writes(notebook), "utf-8")
    loaded = read(path, "ex03")
    assert loaded.problem_status in (None, "unreadable")


# ---------------------------------------------------------------- forged channel bytes, end to end

FORGER = '''"""Writes one hostile line into every descriptor it has (the result channel among them)."""
import os
LINE = {line!r}
for fd in range(3, 64):
    try:
        os.write(fd, LINE)
    except OSError:
        pass


def forward(w, x):
    return w * x
'''


@pytest.mark.slow
@pytest.mark.parametrize("name", ["400-digit integer", "5000-digit integer", "1e400", "100,000-deep array"])
def test_hostile_channel_bytes_end_in_a_rejected_report(name, tmp_path, grade_file):
    path = tmp_path / "ex03.py"
    path.write_text(FORGER.format(line=b"\n" + HOSTILE_LINES[name] + b"\n"), "utf-8")
    report = grade_file("ex03", path)
    data = valid(report)
    assert data["status"] == "rejected" and data["score"] == 0 and "rejected your results" in data["error"]


# ---------------------------------------------------------------- the upload and the grader's own failure


@pytest.fixture
def deep_upload(tmp_path):
    """An upload 1,100 folders deep, removed level by level afterwards: shutil.rmtree recurses once per level,
    so pytest's own clean-up of old temporary folders would fail on it in a later session."""
    folder = tmp_path / "submission"
    folder.mkdir()
    levels = [str(folder)]
    for _ in range(1100):  # os.makedirs and Path.mkdir(parents=True) recurse once per level
        levels.append(levels[-1] + "/d")
        os.mkdir(levels[-1])
    yield folder, Path(levels[-1])
    for name in os.listdir(levels[-1]):
        os.unlink(os.path.join(levels[-1], name))
    for level in reversed(levels[1:]):
        os.rmdir(level)


def test_an_upload_1100_folders_deep_gets_a_results_file(tmp_path, deep_upload):
    folder, deep = deep_upload
    (deep / "ex03.py").write_text("def forward(w, x):\n    return w * x\n", "utf-8")
    results = tmp_path / "results" / "results.json"
    outcome = CliRunner().invoke(main, ["gradescope", "ex03", "--submission", str(folder), "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(results.read_text("utf-8"))["score"] == 0
    pl = tmp_path / "pl.json"
    outcome = CliRunner().invoke(main, ["prairielearn", "ex03", "--submission", str(folder), "--results", str(pl)])
    assert outcome.exit_code == 0 and json.loads(pl.read_text("utf-8"))["gradable"] is False


def test_a_grader_bug_is_exit_3_with_a_grader_failure_report(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("an invariant broke")

    monkeypatch.setattr(compare, "results", bug)
    path = tmp_path / "ex03.py"
    path.write_bytes((ROOT / "solutions" / "ex03.py").read_bytes())
    report_path = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["ex03", str(path), "--device", "cpu", "--report", str(report_path)])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and "the grader failed" in result.stderr
    data = json.loads(report_path.read_text("utf-8"))
    assert validation_errors(data) == [] and data["status"] == "grader-failure" and data["score"] == 0
    for what in ("gradescope", "prairielearn"):
        (tmp_path / what).mkdir()
        (tmp_path / what / "ex03.py").write_bytes(path.read_bytes())
        results = tmp_path / what / "out.json"
        outcome = CliRunner().invoke(main, [what, "ex03", "--submission", str(tmp_path / what), "--results",
                                            str(results)])
        assert outcome.exit_code == 3 and results.exists()


@pytest.mark.parametrize("option", ["--report", "--html", "--plot"])
def test_an_output_path_that_cannot_be_written_is_a_usage_error(option, tmp_path):
    source = tmp_path / "ex03.py"
    source.write_text("x = 1\n", "utf-8")
    for target in (tmp_path, source / "page.out"):  # an existing directory; a path under an existing file
        result = CliRunner().invoke(main, ["ex03", str(source), option, str(target)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_lms_find_submission_stops_at_its_depth(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "ex03.py").write_text("x = 1\n", "utf-8")
    assert lms.find_submission(tmp_path, "ex03")[1].name == "ex03.py"
