"""The result channel: the parent's decoder refuses anything off-protocol, and forged lines earn nothing.

The unit tests feed `channel.decode` raw bytes; the end-to-end tests grade submissions that write
their own lines into every file descriptor they can find, as a cheating student would.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from grader.course import exercises
from grader.model.report import Status, to_dict, validation_errors
from grader.sandbox import channel
from grader.sandbox.channel import ChannelError, decode, encode

ROOT = Path(__file__).resolve().parents[2]


HELLO = b'{"type": "hello", "tier": {"tier": "process"}}\n'


def line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def body(data: bytes) -> list[dict[str, Any]]:
    """Decode `data` as the child would send it (after the worker's hello); the messages after hello."""
    hello, *rest = decode(HELLO + data)
    assert hello["type"] == "hello"
    return rest


# ---------------------------------------------------------------- decode: what passes


def test_round_trip_keeps_plain_numbers_and_non_finite_spellings() -> None:
    message = {"type": "result", "key": "k", "device": "cpu", "ok": True,
               "fields": {"w": [1.5, math.nan, math.inf, -math.inf], "count": 3, "flag": True, "note": None}}
    [decoded] = body(encode(message))
    w = decoded["fields"]["w"]
    assert w[0] == 1.5 and math.isnan(w[1]) and w[2] == math.inf and w[3] == -math.inf
    assert decoded["fields"]["count"] == 3.0 and isinstance(decoded["fields"]["count"], float)
    assert decoded["fields"]["flag"] is True and decoded["fields"]["note"] is None


@pytest.mark.parametrize(("spelling", "value"), [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)])
def test_non_finite_strings_decode_to_floats(spelling: str, value: float) -> None:
    [decoded] = body(line({"type": "result", "fields": {"loss": spelling, "history": [spelling, 1.0]}}))
    for got in (decoded["fields"]["loss"], decoded["fields"]["history"][0]):
        assert isinstance(got, float)
        assert (math.isnan(got) and math.isnan(value)) or got == value


def test_other_strings_stay_strings() -> None:
    [decoded] = body(line({"type": "load_error", "error": {"message": "NaN", "where": "infinity"}}))
    assert decoded["error"] == {"message": "NaN", "where": "infinity"}


def test_empty_channel_is_no_messages() -> None:
    assert decode(b"") == []


# ---------------------------------------------------------------- decode: what is refused


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_json_constants_are_rejected(constant: bytes) -> None:
    with pytest.raises(ChannelError, match="constant"):
        decode(b'{"type": "result", "fields": {"loss": ' + constant + b"}}\n")


@pytest.mark.parametrize("raw", [
    b'{"type": "pickle", "data": "gASVAAAA"}\n',
    b'{"type": "RESULT"}\n',
    b'{"no_type": 1}\n',
    b'["type", "result"]\n',
    b'{"type": ["result"]}\n',  # unhashable: a set lookup would raise TypeError, not ChannelError
    b'{"type": {"result": 1}}\n',
    b'{"type": null}\n',
    b'"done"\n',
    b"42\n",
])
def test_unknown_message_types_are_rejected(raw: bytes) -> None:
    with pytest.raises(ChannelError, match="no known type"):
        decode(raw)


@pytest.mark.parametrize("raw", [b"{not json}\n", b'{"type": "done"\n', b"\xff\xfe{}\n"])
def test_malformed_lines_are_rejected(raw: bytes) -> None:
    with pytest.raises(ChannelError, match="not valid JSON"):
        decode(raw)


def test_one_bad_line_among_good_ones_rejects_the_channel() -> None:
    good = encode({"type": "done"})
    with pytest.raises(ChannelError, match="message 2"):
        decode(good + b'{"type": "evil"}\n' + good)


def test_oversize_message_is_rejected() -> None:
    padding = "x" * channel.MAX_MESSAGE_BYTES
    with pytest.raises(ChannelError, match="larger than"):
        decode(line({"type": "result", "pad": padding}))


def test_oversize_list_is_rejected() -> None:
    fields = {"w": [0.0] * (channel.MAX_LIST_LENGTH + 1)}
    with pytest.raises(ChannelError, match="list longer"):
        decode(line({"type": "result", "fields": fields}))


def test_list_at_the_limit_is_accepted() -> None:
    [decoded] = body(line({"type": "result", "fields": {"w": [0.5] * channel.MAX_LIST_LENGTH}}))
    assert len(decoded["fields"]["w"]) == channel.MAX_LIST_LENGTH


def test_oversize_total_is_rejected() -> None:
    one = line({"type": "result", "pad": "y" * 1000})
    data = one * (channel.MAX_CHANNEL_BYTES // len(one) + 1)
    with pytest.raises(ChannelError, match="more than"):
        decode(data)


def test_too_many_messages_are_rejected() -> None:
    with pytest.raises(ChannelError, match="too many"):
        decode(b'{"type":"done"}\n' * (channel.MAX_MESSAGES + 1))


def test_overlong_string_is_rejected() -> None:
    with pytest.raises(ChannelError, match="string longer"):
        decode(line({"type": "load_error", "error": {"message": "z" * (channel.MAX_STRING_LENGTH + 1)}}))


def test_too_many_fields_are_rejected() -> None:
    fields = {f"f{i}": 1.0 for i in range(channel.MAX_FIELDS + 1)}
    with pytest.raises(ChannelError, match="more than"):
        decode(line({"type": "result", "fields": fields}))


def test_deep_nesting_is_rejected() -> None:
    nested: Any = [1.0]
    for _ in range(6):
        nested = [nested]
    with pytest.raises(ChannelError, match="nested too deeply"):
        decode(line({"type": "result", "fields": {"w": nested}}))


@pytest.mark.parametrize("tail", [b'\\"', b'\\\\"', b'\\'], ids=["escaped-quotes", "backslash-pairs", "backslashes"])
def test_an_unterminated_string_of_escapes_is_rejected_in_linear_time(tail: bytes) -> None:
    # Every quote of `"\"\"\"...` (unterminated) once started a new, failing, scan to the end of the line.
    data = b'{"type":"result","key":"' + tail * ((channel.MAX_MESSAGE_BYTES - 30) // len(tail)) + b"\n"
    started = time.monotonic()
    with pytest.raises(ChannelError, match="not valid JSON"):
        decode(HELLO + data)
    assert time.monotonic() - started < 5.0  # ~0.1 s; the old pattern took over an hour


def test_nesting_is_counted_outside_strings_only() -> None:
    assert channel._depth(b'{"a":"x\\\\","b":[[["]]]]]]"]]]}') == 4


def result(key: str, device: str = "cpu") -> bytes:
    return line({"type": "result", "key": key, "device": device, "ok": True, "fields": {"value": 1.0}})


DONE = b'{"type": "done"}\n'


def test_a_genuine_sequence_is_accepted() -> None:
    messages = decode(HELLO + result("a") + result("b") + result("a", "cuda") + DONE)
    assert [m["type"] for m in messages] == ["hello", "result", "result", "result", "done"]


@pytest.mark.parametrize(("data", "reason"), [
    (result("a") + DONE, "first message"),
    (HELLO + HELLO + result("a"), "second hello"),
    (HELLO + result("a") + HELLO, "second hello"),
    (HELLO + DONE + result("a") + DONE, "says done"),
    (HELLO + DONE + DONE, "says done"),
    (HELLO + result("a") + result("b") + result("a"), "repeats the result"),
])
def test_out_of_protocol_sequences_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(ChannelError, match=reason):
        decode(data)


def test_encode_refuses_objects() -> None:
    with pytest.raises(TypeError, match="not plain data"):
        encode({"type": "result", "fields": {"w": object()}})


# ---------------------------------------------------------------- end to end: forged lines earn nothing


def forging_prelude(lines: list[dict[str, Any]]) -> str:
    """Source that writes `lines` (JSON) into every open descriptor from 3 up, at import time."""
    payload = "".join(json.dumps(m) + "\n" for m in lines)
    return (
        "import os as _os\n"
        f"_FORGED = {payload!r}.encode()\n"
        "for _fd in range(3, 256):\n"
        "    try:\n"
        "        _os.write(_fd, _FORGED)\n"
        "    except OSError:\n"
        "        pass\n"
    )


def fake_results(exercise_id: str, fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A result for every check of the exercise, as the harness would spell it, with made-up numbers."""
    exercise = exercises.load(exercise_id)
    out = []
    for invocation in exercise.invocations():
        made_up = fields or {"value": [123.0] * 16, "w": [7.0] * 200, "loss": [0.5] * 200,
                             "backward_calls": 10_000, "step_calls": 10_000}
        out.append({"type": "result", "key": invocation["key"], "device": "cpu", "ok": True, "fields": made_up})
    return out


def stub() -> str:
    return (ROOT / "exercises" / "ex03" / "stub.py").read_text("utf-8")


def solution() -> str:
    return (ROOT / "solutions" / "ex03.py").read_text("utf-8")


def grade_source(grade_file, tmp_path: Path, source: str):
    path = tmp_path / "ex03.py"
    path.write_text(source, "utf-8")
    report = grade_file("ex03", path)
    assert validation_errors(to_dict(report)) == []
    return report


FORGERIES = {
    "done-only": [{"type": "done"}],
    "fake-results-then-done": [*fake_results("ex03"), {"type": "done"}],
    "fake-results-twice": [*fake_results("ex03"), *fake_results("ex03")],
    "fake-process-counts": fake_results("ex03", {"backward_calls": 10_000, "step_calls": 10_000}),
    "garbled-fields": [
        *fake_results("ex03", {"value": "lots", "w": [[1.0], [2.0, 3.0]], "loss": {"a": 1.0},
                               "backward_calls": "many"}),
    ],
    "fields-not-a-mapping": [{**m, "fields": [1.0, 2.0]} for m in fake_results("ex03")],
    "error-not-a-mapping": [{**m, "ok": False, "error": "gotcha"} for m in fake_results("ex03")],
    "load-error-not-a-mapping": [{"type": "load_error", "error": ["x"]}],
    "fake-hello": [{"type": "hello", "tier": {"tier": 5, "defences": "all"}}],
}


@pytest.mark.slow
@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_forged_lines_do_not_raise_the_stubs_score(grade_file, tmp_path: Path, forgery: str) -> None:
    report = grade_source(grade_file, tmp_path, forging_prelude(FORGERIES[forgery]) + stub())
    assert report.score == 0, [(c.name, c.score, c.message) for c in report.checks if c.score]
    assert not report.full_marks
    assert all(c.status is not Status.PASSED for c in report.checks)


@pytest.mark.slow
@pytest.mark.parametrize("forgery", ["fake-results-then-done", "fake-results-twice", "garbled-fields"])
def test_forged_lines_cannot_lift_a_correct_submission_above_its_own_marks(grade_file, tmp_path: Path,
                                                                           forgery: str) -> None:
    honest = grade_source(grade_file, tmp_path, solution())
    forged = grade_source(grade_file, tmp_path, forging_prelude(FORGERIES[forgery]) + solution())
    assert honest.full_marks
    assert forged.score <= honest.score
    assert "rejected your results" in (forged.error or ""), forged.error  # a forged line spoils the lot


@pytest.mark.slow
def test_flooding_the_channel_is_a_graded_zero(grade_file, tmp_path: Path) -> None:
    flood = (
        "import os as _os\n"
        "_line = b'{\"type\": \"done\"}' + b' ' * 60000 + b'\\n'\n"
        "for _fd in range(3, 256):\n"
        "    try:\n"
        "        for _ in range(200):\n"
        "            _os.write(_fd, _line)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    report = grade_source(grade_file, tmp_path, flood + solution())
    assert report.score == 0
    assert "rejected your results" in (report.error or "") or "more result data" in (report.error or "")


@pytest.mark.slow
def test_a_complete_forged_run_followed_by_exit_earns_nothing(grade_file, tmp_path: Path) -> None:
    exit_now = "_os._exit(0)\n"
    report = grade_source(grade_file, tmp_path,
                          forging_prelude([*fake_results("ex03"), {"type": "done"}]) + exit_now + stub())
    assert report.score == 0, [(c.name, c.score) for c in report.checks if c.score]
