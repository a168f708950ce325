"""The wire format between a sandboxed child and the trusted parent: JSON lines of plain numbers.

The child side only encodes. The parent side decodes and distrusts everything: size and count caps,
only finite numbers (non-finite values travel as the strings "nan", "inf", "-inf"), a fixed vocabulary
of message types, and no object ever rebuilt from the bytes (no pickle).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from grader.sandbox.messages import MESSAGES

MAX_CHANNEL_BYTES = 8 * 1024 * 1024  # everything one submission may send
MAX_MESSAGE_BYTES = 1024 * 1024  # one line
MAX_LIST_LENGTH = 100_000  # one field's numbers
MAX_STRING_LENGTH = 4000  # error messages, tracebacks (already capped by the child)
MAX_FIELDS = 64
MAX_MESSAGES = 10_000
MAX_DEPTH = 6  # message → fields → value → rows → numbers, and one to spare: ex05's (n, output_dim) arrays
MAX_NUMBER_CHARS = 32  # the child writes floats with repr(): 17 significant digits and an exponent at most
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
MESSAGE_TYPES = frozenset(MESSAGES)  # messages.py: the one list of message types


class ChannelError(ValueError):
    """The child sent something the protocol does not allow."""


# ---------------------------------------------------------------- child side


def plain(value: Any) -> Any:
    """Make a value JSON-safe with non-finite floats spelled as strings (child side)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = float(value)
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise TypeError(f"not plain data: {type(value).__name__}")


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(plain(message), allow_nan=False, separators=(",", ":")) + "\n").encode()


# ---------------------------------------------------------------- parent side


def _reject_constant(name: str) -> Any:
    raise ChannelError(f"non-standard JSON constant {name}")


def _parse_float(text: str) -> float:
    """A JSON number with a fraction or exponent: short, and finite (`1e400` would parse as infinity)."""
    if len(text) > MAX_NUMBER_CHARS:
        raise ChannelError(f"a number {len(text)} characters long")
    value = float(text)
    if not math.isfinite(value):
        raise ChannelError(f"a number out of range ({text[:20]})")
    return value


def _parse_int(text: str) -> float:
    """The child sends every number as a float; an integer literal is accepted only while it is short."""
    if len(text) > MAX_NUMBER_CHARS:
        raise ChannelError(f"an integer {len(text)} digits long")
    return float(int(text))


# A string, or an unterminated one to the end of the line: the closing quote is optional, so that a match
# never fails and is retried from the next quote (`"\"\"\"...` unterminated would rescan the rest of the
# line from every escaped quote: quadratic, hours for one 1 MiB line). An unterminated string is invalid
# JSON, which json.loads rejects at its start, before any bracket after it.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def _depth(line: bytes) -> int:
    """How deeply brackets nest in one JSON line, counted outside strings, without parsing it."""
    brackets = _STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
    return deepest


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _check_value(value: Any, where: str, depth: int = 0) -> Any:
    """Validate one field value and turn the non-finite spellings back into floats."""
    if depth > MAX_DEPTH - 1:  # fields → value → rows → numbers: ex05's (n, output_dim) outputs and weights
        raise ChannelError(f"{where}: nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ChannelError(f"{where}: string longer than {MAX_STRING_LENGTH}")
        return NONFINITE.get(value, value)
    if isinstance(value, list):
        if len(value) > MAX_LIST_LENGTH:
            raise ChannelError(f"{where}: list longer than {MAX_LIST_LENGTH}")
        return [_check_value(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) > MAX_FIELDS:
            raise ChannelError(f"{where}: more than {MAX_FIELDS} fields")
        return {str(k)[:100]: _check_value(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise ChannelError(f"{where}: unexpected {type(value).__name__}")


def decode(data: bytes) -> list[dict[str, Any]]:
    """Parse and validate everything a child sent. Raises ChannelError on any violation."""
    if len(data) > MAX_CHANNEL_BYTES:
        raise ChannelError(f"the submission sent more than {MAX_CHANNEL_BYTES} bytes of results")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) > MAX_MESSAGES:
        raise ChannelError("too many result messages")
    messages = []
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_MESSAGE_BYTES:
            raise ChannelError(f"message {number} is larger than {MAX_MESSAGE_BYTES} bytes")
        if _depth(line) > MAX_DEPTH:  # before parsing: json's recursion is no place to find out
            raise ChannelError(f"message {number} is nested too deeply (more than {MAX_DEPTH} levels)")
        try:
            raw = json.loads(line.decode("utf-8"), parse_constant=_reject_constant, parse_float=_parse_float,
                             parse_int=_parse_int)
        except ChannelError as exc:
            raise ChannelError(f"message {number}: {exc}") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise ChannelError(f"message {number} is not valid JSON ({str(exc)[:200]})") from None
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str) or kind not in MESSAGE_TYPES:  # a list or an object is unhashable
            raise ChannelError(f"message {number} has no known type")
        messages.append(_check_value(raw, f"message {number}"))
    _check_sequence(messages)
    return messages


def _check_sequence(messages: list[dict[str, Any]]) -> None:
    """The harness says hello once, first; sends each (key, device) result once; says done once, last.

    Anything else means student code wrote into the pipe itself: a forged line that arrives before the
    genuine one would otherwise win.
    """
    if messages and messages[0]["type"] != "hello":
        raise ChannelError("the first message is not the worker's hello")
    seen: set[tuple[str, str]] = set()
    for number, message in enumerate(messages, 1):
        kind = message["type"]
        if kind == "hello" and number > 1:
            raise ChannelError(f"message {number} is a second hello")
        if kind == "phase" and any(m["type"] == "phase" for m in messages[:number - 1]):
            raise ChannelError(f"message {number} is a second phase")
        if kind == "done" and number < len(messages):
            raise ChannelError(f"message {number} says done, but more messages follow")
        if kind == "result":
            slot = (str(message.get("key")), str(message.get("device")))
            if slot in seen:
                raise ChannelError(f"message {number} repeats the result for {slot[0]} on {slot[1]}")
            seen.add(slot)
