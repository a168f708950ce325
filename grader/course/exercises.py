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
    root = course_root()
    return sorted(p.name for p in root.iterdir() if EXERCISE_ID.fullmatch(p.name) and (p / "spec.toml").exists())


def framework_of(exercise_id: str) -> str:
    """The exercise's framework, read without loading its checks (no NumPy import: keeps start-up fast)."""
    spec = tomllib.loads((course_root() / exercise_id / "spec.toml").read_text("utf-8"))
    return spec.get("framework", "torch")


@cache
def load(exercise_id: str) -> Exercise:
    folder = course_root() / exercise_id
    if not EXERCISE_ID.fullmatch(exercise_id) or not (folder / "spec.toml").exists():
        raise KeyError(exercise_id)
    spec = tomllib.loads((folder / "spec.toml").read_text("utf-8"))
    hidden_path = folder / "hidden" / "spec.toml"
    hidden = tomllib.loads(hidden_path.read_text("utf-8")) if hidden_path.exists() else {"checks": []}
    raw_checks = [(c, "visible") for c in spec.get("checks", [])]
    raw_checks += [(c, "hidden") for c in hidden.get("checks", [])]
    by_name: dict[str, dict[str, Any]] = {}
    checks = []
    for raw, visibility in raw_checks:
        by_name[raw["name"]] = raw
        checks.append(_check(raw, visibility, by_name, exercise_id))
    return Exercise(
        id=exercise_id,
        title=spec["title"],
        folder=folder,
        framework=spec.get("framework", "torch"),
        functions=tuple(spec.get("functions", ())),
        rtol=float(spec.get("rtol", 1e-4)),
        atol=float(spec.get("atol", 1e-6)),
        checks=tuple(checks),
        hidden_available=hidden_path.exists(),
        meta={k: v for k, v in spec.items() if k not in {"checks", "title"}},
    )


def _check(raw: dict[str, Any], visibility: str, by_name: dict[str, dict[str, Any]], ex: str) -> CheckSpec:
    if "run" in raw:  # reuse another check's probe call
        base = by_name.get(raw["run"])
        if base is None:
            raise ExerciseError(f"{ex}: check {raw['name']!r} runs unknown check {raw['run']!r}")
        raw = {**base, **{k: v for k, v in raw.items() if k != "run"}}
    compare = raw.get("compare", "value")
    if compare not in COMPARES:
        raise ExerciseError(f"{ex}: check {raw['name']!r}: unknown compare {compare!r}")
    return CheckSpec(
        name=raw["name"],
        probe=raw["probe"],
        args=expand(raw.get("args", {})),
        compare=compare,
        points=float(raw.get("points", 1)),
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
