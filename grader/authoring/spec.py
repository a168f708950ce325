"""An exercise's files held to their documented shape: spec.toml against its JSON Schema, and what a schema
cannot say (a probe that probe.py defines, a `run` naming an earlier check, names unique, the files present).

Every problem is one line naming the file and the key: `spec.toml: checks[2].points: -1 is less than ...`.
The schema is grader/schema/spec.schema.json; `keys_table()` renders it for docs/authoring.md (a test holds the
two together), so each key's default is written once, in the schema the grader itself reads.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

from grader.course import exercises

FILES = ("statement.md", "stub.py", "hints.md", "probe.py", "spec.toml")


def problems(exercise_id: str) -> list[str]:
    """Every problem of the exercise's folder, one line each (empty when sound)."""
    folder = exercises.course_root() / exercise_id
    found = [f"{name}: missing" for name in FILES if not (folder / name).is_file()]
    specs: dict[str, dict[str, Any]] = {}
    for relative, definition in (("spec.toml", None), ("hidden/spec.toml", "hidden")):
        path = folder / relative
        if not path.is_file():
            continue
        try:
            specs[relative] = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            found.append(f"{relative}: not TOML: {' '.join(str(exc).split())}")
            continue
        found += [f"{relative}: {line}" for line in schema_problems(specs[relative], definition)]
    found += [f"{where}: {line}" for where, line in _meaning(folder, specs)]
    return found


def schema_problems(data: Any, definition: str | None = None) -> list[str]:
    """`data` against the spec schema (or one of its $defs): `key: what is wrong`, one per problem."""
    import jsonschema

    schema = exercises.spec_schema()
    if definition is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        key = _key(list(error.absolute_path))
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else "?"
            lines.append(f"{_join(key, missing)}: missing (required)")
        elif error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            lines += [f"{_join(key, name)}: unknown key" for name in extra]
        elif error.validator == "anyOf" and key.startswith("checks["):
            lines.append(f"{key}: needs `probe` (or `run`, naming an earlier check)")
        else:
            lines.append(f"{key or '<top>'}: {error.message}")
    return lines


def _key(path: list[Any]) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _meaning(folder: Path, specs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """What the schema cannot check: probes defined, `run` targets earlier, check names unique."""
    probes = _probe_functions(folder / "probe.py")
    seen: set[str] = set()
    found = []
    for relative, spec in specs.items():
        checks = spec.get("checks", [])
        for index, check in enumerate(checks if isinstance(checks, list) else []):
            if not isinstance(check, dict):
                continue
            name = check.get("name")
            if name in seen:
                found.append((relative, f"checks[{index}].name: {name!r} is used twice"))
            if isinstance(name, str):
                seen.add(name)
            run = check.get("run")
            if run is not None and run not in seen - {name}:
                found.append((relative, f"checks[{index}].run: no earlier check is named {run!r}"))
            probe = check.get("probe")
            if isinstance(probe, str) and probes is not None and probe not in probes:
                found.append((relative, f"checks[{index}].probe: probe.py defines no function {probe!r}"))
    if "hidden/spec.toml" in specs:
        hidden = specs["hidden/spec.toml"].get("checks", [])
        default = exercises.spec_default("points", "check")
        points = sum(c.get("points", default) for c in (hidden if isinstance(hidden, list) else [])
                     if isinstance(c, dict) and isinstance(c.get("points", default), (int, float)))
        declared = specs.get("spec.toml", {}).get("hidden_points", 0)
        if isinstance(declared, (int, float)) and abs(float(declared) - float(points)) > 1e-9:
            found.append(("spec.toml", f"hidden_points: {declared:g} declared, but hidden/spec.toml's checks are "
                                       f"worth {points:g}"))
    return found


def _probe_functions(path: Path) -> set[str] | None:
    try:
        tree = ast.parse(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None  # missing or unreadable: said once, by FILES
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def keys_table() -> str:
    """The spec's keys as a Markdown table (docs/authoring.md holds exactly this)."""
    schema = exercises.spec_schema()
    check = schema["$defs"]["check"]
    rows = ["| key | where | default | meaning |", "|---|---|---|---|"]
    for where, properties, required in (("spec.toml", schema["properties"], schema["required"]),
                                        ("`[[checks]]`", check["properties"], check["required"])):
        for key, prop in properties.items():
            if key in required:
                default = "required"
            elif "default" in prop:
                default = f"`{toml_value(prop['default'])}`"
            else:
                default = "see meaning"
            meaning = prop["description"].replace("|", "\\|")
            rows.append(f"| `{key}` | {where} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, float) and value and abs(value) < 1e-2:  # 1e-5, as a spec writes it
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)
