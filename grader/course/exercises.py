"""The exercise registry: finds exercise folders and loads their specs and references. No grading logic.

An exercise is a folder `exNN/` holding statement.md, stub.py, hints.md, probe.py (child-side calls),
spec.toml (visible checks) and references/visible.json; a full checkout adds hidden/spec.toml and
hidden/references.json, which never ship in the wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

EXERCISE_ID = re.compile(r"^ex\d{2}\Z")  # \Z, not $: "ex03\n" is not an id
COMPARES = {"value", "trajectory", "process"}


@cache
def spec_schema() -> dict[str, Any]:
    """The JSON Schema of spec.toml (grader/schema/spec.schema.json): its keys, and their defaults written once."""
    from importlib import resources

    return json.loads(resources.files("grader").joinpath("schema/spec.schema.json").read_text("utf-8"))


def spec_default(key: str, where: str = "exercise") -> Any:
    """A key's default from the schema: an exercise's top-level key, or a check's (`where="check"`)."""
    schema = spec_schema()
    properties = schema["properties"] if where == "exercise" else schema["$defs"]["check"]["properties"]
    return properties[key]["default"]


class ExerciseError(ValueError):
    """A spec or reference file is malformed (an authoring error, not a student's)."""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    probe: str
    args: dict[str, Any]
    compare: str
    points: float
    visibility: str
    fields: tuple[str, ...] = ()
    require: str | None = None  # process checks: the rule's name
    rtol: float | None = None
    atol: float | None = None
    substitutes: tuple[str, ...] = ()  # reference functions the probe swaps in (for messages)

    @cached_property  # a hash of the arguments' JSON: asked for many times per grade
    def key(self) -> str:
        return invocation_key(self.probe, self.args)


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    folder: Path
    framework: str  # "numpy" | "torch"
    functions: tuple[str, ...]
    rtol: float
    atol: float
    checks: tuple[CheckSpec, ...]
    hidden_available: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def hidden_points(self) -> float:
        """The hidden checks' points: summed where hidden/ is here, else as spec.toml's `hidden_points` declares
        them (the student wheel ships no hidden/, yet its totals must say that points remain)."""
        if self.hidden_available:
            return float(sum(c.points for c in self.checks if c.visibility == "hidden"))
        return float(self.meta.get("hidden_points", 0))

    @property
    def statement(self) -> str:
        return self.path("statement.md").read_text("utf-8")

    @property
    def stub(self) -> str:
        return self.path("stub.py").read_text("utf-8")

    @property
    def probe_source(self) -> str:
        return self.path("probe.py").read_text("utf-8")

    def invocations(self, checks: tuple[CheckSpec, ...] | None = None) -> list[dict[str, Any]]:
        """The distinct probe calls behind the checks (process checks reuse another check's run)."""
        seen: dict[str, dict[str, Any]] = {}
        for check in self.checks if checks is None else checks:
            seen.setdefault(check.key, {"key": check.key, "probe": check.probe, "args": check.args})
        return list(seen.values())

    def references(self) -> dict[str, dict[str, Any]]:
        """Recorded probe results from the reference solution, keyed by invocation key."""
        merged: dict[str, dict[str, Any]] = {}
        for path in self.reference_files():
            merged.update(json.loads(path.read_text("utf-8"))["invocations"])
        return merged

    def reference_seconds(self) -> dict[str, float]:
        """How long each reference call took when it was recorded (`grade record`), keyed by invocation key;
        the calls of files that are missing or unreadable are simply not known."""
        seconds: dict[str, float] = {}
        for relative in TIMING_FILES:
            path = self.path(relative)
            if relative.startswith("hidden/") and not self.hidden_available:
                continue
            try:
                found = json.loads(path.read_text("utf-8")).get("seconds", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(found, dict):
                seconds.update({k: float(v) for k, v in found.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0})
        return seconds

    def reference_files(self) -> list[Path]:
        files = [self.path("references/visible.json")]
        if self.hidden_available:
            files.append(self.path("hidden/references.json"))
        return [f for f in files if f.exists()]

    def references_digest(self) -> str:
        digest = hashlib.sha256()
        for path in self.reference_files():
            digest.update(path.read_bytes())
        for name in ("spec.toml", "hidden/spec.toml", "probe.py"):
            if self.path(name).exists():
                digest.update(self.path(name).read_bytes())
        return digest.hexdigest()


# How long each reference call took, as `grade record` measured it: visible calls', then hidden calls'.
TIMING_FILES = ("references/timing.json", "hidden/timing.json")


def invocation_key(probe: str, args: dict[str, Any]) -> str:
    text = json.dumps({"probe": probe, "args": args}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def course_root() -> Path:
    """Where the exercises live: $GRADER_COURSE, else the checkout's exercises/, else the installed copy."""
    if os.environ.get("GRADER_COURSE"):
        return Path(os.environ["GRADER_COURSE"])
    checkout = Path(__file__).resolve().parents[2] / "exercises"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parents[1] / "_course"


def solutions_root() -> Path | None:
    folder = course_root().parent / "solutions"
    return folder if folder.is_dir() else None


def exercise_ids() -> list[str]:
    """The exercises that load: a broken one (see `broken`) is left out, so that the others go on."""
    return [e for e in folder_ids() if problem(e) is None]


def folder_ids() -> list[str]:
    """Every exercise folder of the course (exNN/ with a spec.toml), broken or not."""
    root = course_root()
    try:
        return sorted(p.name for p in root.iterdir() if EXERCISE_ID.fullmatch(p.name) and (p / "spec.toml").exists())
    except OSError:
        return []


def problem(exercise_id: str) -> str | None:
    """Why the exercise cannot be loaded, in one line naming the file and key; None when it loads."""
    try:
        load(exercise_id)
    except ExerciseError as exc:
        return str(exc).removeprefix(f"{exercise_id}: ")
    return None


def broken() -> dict[str, str]:
    """{exercise id: its problem} for each exercise folder that does not load."""
    return {e: why for e in folder_ids() if (why := problem(e)) is not None}


def framework_of(exercise_id: str) -> str:
    """The exercise's framework, read without loading its checks (no NumPy import: keeps start-up fast)."""
    try:
        spec = tomllib.loads((course_root() / exercise_id / "spec.toml").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        spec = {}
    return str(spec.get("framework", spec_default("framework")))


@cache
def load(exercise_id: str) -> Exercise:
    """The exercise, or ExerciseError naming the file and key at fault (one line); KeyError: no such exercise."""
    folder = course_root() / exercise_id
    if not EXERCISE_ID.fullmatch(exercise_id) or not (folder / "spec.toml").exists():
        raise KeyError(exercise_id)
    spec = _read_spec(folder, "spec.toml")
    hidden_path = folder / "hidden" / "spec.toml"
    hidden = _read_spec(folder, "hidden/spec.toml") if hidden_path.exists() else {"checks": []}
    title = spec.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ExerciseError(f"{exercise_id}: spec.toml: title: missing (a string: the exercise's title)")
    raw_checks = [(c, "visible", "spec.toml", i) for i, c in enumerate(_checks(spec, exercise_id, "spec.toml"))]
    raw_checks += [(c, "hidden", "hidden/spec.toml", i)
                   for i, c in enumerate(_checks(hidden, exercise_id, "hidden/spec.toml"))]
    by_name: dict[str, dict[str, Any]] = {}
    checks = []
    for raw, visibility, where, index in raw_checks:
        try:
            checks.append(_check(raw, visibility, by_name, exercise_id))
        except ExerciseError:
            raise
        except KeyError as exc:
            raise ExerciseError(f"{exercise_id}: {where}: checks[{index}].{exc.args[0]}: missing") from None
        except (TypeError, ValueError) as exc:
            raise ExerciseError(f"{exercise_id}: {where}: checks[{index}]: {exc}") from None
        by_name[raw["name"]] = raw
    try:
        return Exercise(
            id=exercise_id,
            title=title,
            folder=folder,
            framework=str(spec.get("framework", spec_default("framework"))),
            functions=tuple(spec.get("functions", spec_default("functions"))),
            rtol=float(spec.get("rtol", spec_default("rtol"))),
            atol=float(spec.get("atol", spec_default("atol"))),
            checks=tuple(checks),
            hidden_available=hidden_path.exists(),
            meta={k: v for k, v in spec.items() if k not in {"checks", "title"}},
        )
    except (TypeError, ValueError) as exc:
        raise ExerciseError(f"{exercise_id}: spec.toml: {exc}") from None


def _read_spec(folder: Path, relative: str) -> dict[str, Any]:
    try:
        return tomllib.loads((folder / relative).read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ExerciseError(f"{folder.name}: {relative}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExerciseError(f"{folder.name}: {relative}: not TOML: {exc}") from None


def _checks(spec: dict[str, Any], exercise_id: str, where: str) -> list[dict[str, Any]]:
    checks = spec.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        raise ExerciseError(f"{exercise_id}: {where}: checks: not a list of [[checks]] tables")
    for index, check in enumerate(checks):
        if not isinstance(check.get("name"), str):
            raise ExerciseError(f"{exercise_id}: {where}: checks[{index}].name: missing (a string)")
    return checks


def _check(raw: dict[str, Any], visibility: str, by_name: dict[str, dict[str, Any]], ex: str) -> CheckSpec:
    if "run" in raw:  # reuse another check's probe call
        base = by_name.get(raw["run"])
        if base is None:
            raise ExerciseError(f"{ex}: check {raw['name']!r} runs unknown check {raw['run']!r}")
        raw = {**base, **{k: v for k, v in raw.items() if k != "run"}}
    compare = raw.get("compare", spec_default("compare", "check"))
    if compare not in COMPARES:
        raise ExerciseError(f"{ex}: check {raw['name']!r}: unknown compare {compare!r}")
    return CheckSpec(
        name=raw["name"],
        probe=raw["probe"],
        args=expand(raw.get("args", {})),
        compare=compare,
        points=float(raw.get("points", spec_default("points", "check"))),
        visibility=visibility,
        fields=tuple(raw.get("fields", ("value",) if compare == "value" else ())),
        require=raw.get("require"),
        rtol=raw.get("rtol"),
        atol=raw.get("atol"),
        substitutes=tuple(raw.get("substitutes", ())),
    )


def expand(args: Any) -> Any:
    """Turn generator directives into explicit numbers, so every input is plain data sent to the child.

    `{random = [n] or [n, d], seed = s, low = a, high = b}` draws float32-representable uniform values.
    """
    if isinstance(args, dict) and "random" in args:
        import numpy as np

        rng = np.random.default_rng(int(args.get("seed", 0)))
        shape = args["random"] if isinstance(args["random"], list) else [args["random"]]
        values = rng.uniform(float(args.get("low", -3.0)), float(args.get("high", 3.0)), size=shape)
        return np.round(values, 3).astype(np.float32).astype(float).tolist()
    if isinstance(args, dict):
        return {k: expand(v) for k, v in args.items()}
    if isinstance(args, list):
        return [expand(v) for v in args]
    return args
