"""MkDocs hooks (mkdocs.yml `hooks:`): the reference pages that the code knows are generated when the site is built.

A page asks for a generated part with a marker on a line of its own, e.g. `<!-- generated: cli -->`:

- `cli`: every `grade` command, its arguments and options with their defaults, walked from the click group;
- `diagnoses`: the diagnosis codes from the registry (grader/model/codes.py) with the explanation each one gives
  (grader/grading/diagnose.py);
- `openapi`: the grading service's endpoints from the FastAPI app's own OpenAPI document, which the site also
  serves as `openapi.json`;
- `benchmarks`: benchmarks/RESULTS.md, which lives beside the benchmark scripts.

Nothing here is copied by hand, so it cannot drift; tests/test_docs.py builds the site with `--strict`.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import click

MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z-]+) -->$", re.MULTILINE)
CODE_SPAN = re.compile(r"(`[^`]*`)")
DEFAULT_NOTE = re.compile(r"\s*\[default: (?P<default>[^\]]*)\]")
REQUIRED_NOTE = re.compile(r"\s*\[required\]")


# ---- text that lands in a Markdown page as text, not as markup

def prose(text: str, table: bool = False) -> str:
    """Text with its `code spans` kept and everything else escaped: `<student>` stays visible, `**2` stays two
    stars, and in a table cell a `|` is not a column."""
    parts = []
    for part in CODE_SPAN.split(" ".join(text.split())):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            parts.append(part)
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"([\\*_\[\]#])", r"\\\1", part)
        if table:
            part = part.replace("|", "\\|")
        parts.append(part)
    return "".join(parts)


def code(text: str) -> str:
    """Inline code that survives any backticks in it."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# ---- the command line

def _default(param: click.Option, help_text: str) -> tuple[str, str]:
    """The option's default as a reader needs it, and its help without click's `[default: ...]` note."""
    note = DEFAULT_NOTE.search(help_text)
    help_text = REQUIRED_NOTE.sub("", DEFAULT_NOTE.sub("", help_text)).strip()
    if param.required:
        return "required", help_text
    if param.is_flag:
        return "off", help_text
    if param.multiple:
        return (note.group("default") if note else "none"), help_text
    if param.default is None or type(param.default).__name__ == "Sentinel":  # click 8.2+: UNSET, no default
        return (note.group("default") if note else "none"), help_text
    value = param.default() if callable(param.default) else param.default
    return code(str(value)), help_text


def _command_section(path: str, command: click.Command, parent: click.Context) -> list[str]:
    ctx = click.Context(command, info_name=path.split()[-1], parent=parent)
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"### `{path}`", "", f"```text\n{path} {usage}\n```", ""]
    if command.help:
        lines += [prose(command.help), ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["| argument | type | required |", "|---|---|---|"]
        for argument in arguments:
            lines.append(f"| {code(argument.human_readable_name)} | {prose(argument.type.name, table=True)} | "
                         f"{'yes' if argument.required else 'no'} |")
        lines.append("")
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines += ["| option | default | what it does |", "|---|---|---|"]
        for option in options:
            record = option.get_help_record(ctx)
            if record is None:
                continue
            names, help_text = record
            default, help_text = _default(option, help_text)
            lines.append(f"| {code(names)} | {default} | {prose(help_text, table=True)} |")
        lines.append("")
    return lines


def _walk(group: click.Group, prefix: str, parent: click.Context) -> list[str]:
    lines: list[str] = []
    ctx = click.Context(group, info_name=prefix.split()[-1], parent=parent)
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            lines += _walk(command, f"{prefix} {name}", ctx)
        else:
            lines += _command_section(f"{prefix} {name}", command, ctx)
    return lines


def cli_reference() -> str:
    """Every command of `grade`: `grade EX [FILE]` (the hidden `check` command that an exercise id selects) first."""
    from grader.cli.main import main

    root = click.Context(main, info_name="grade")
    check = main.commands["check"]
    lines = _command_section("grade", check, root)
    lines[0] = "### `grade EX [FILE]`"
    lines[2] = "```text\ngrade EX [FILE] [OPTIONS]\n```"
    lines.insert(4, "Grade FILE (default `./EX.py`, else `./EX.ipynb`) for the exercise EX, e.g. `grade ex03`.\n")
    return "\n".join(lines + _walk(main, "grade", root))


def cli_options() -> dict[str, dict[str, Any]]:
    """Each command's options and their defaults as the generated page shows them (for tests)."""
    from grader.cli.main import main

    found: dict[str, dict[str, Any]] = {}

    def visit(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}"
            if isinstance(command, click.Group):
                visit(command, path)
            else:
                found[path] = {o.opts[0]: o.default for o in command.params if isinstance(o, click.Option)}

    visit(main, "grade")
    return found


# ---- the diagnosis codes

def diagnoses_reference() -> str:
    from grader.grading import diagnose
    from grader.model.codes import CODES

    lines = ["| code | the mistake it names | since |", "|---|---|---|"]
    lines += [f"| `{c.value}` | {c.meaning} | {c.since} |" for c in CODES]
    lines += ["", "## What each code tells the student", ""]
    for c in CODES:
        lines += [f"### `{c.value}`", "", prose(diagnose.EXPLANATIONS[c]), ""]
        if c in diagnose.TORCH_EXPLANATIONS:
            lines += ["In a PyTorch exercise:", "", prose(diagnose.TORCH_EXPLANATIONS[c]), ""]
    return "\n".join(lines)


# ---- the HTTP API

@cache
def openapi_document() -> dict[str, Any]:
    """The service app's own OpenAPI document (the app is made on a throwaway SQLite file; nothing is started)."""
    from grader.service.app import create_app
    from grader.service.config import Config

    with tempfile.TemporaryDirectory(prefix="grade-docs-") as directory:
        app = create_app(Config(db_url=f"sqlite:///{Path(directory) / 'docs.sqlite3'}"))
        document = app.openapi()
        app.state.service.engine.dispose()
    return json.loads(json.dumps(document))


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    return str(schema.get("format") or schema.get("type") or "any")


def _body_fields(document: dict[str, Any], body: dict[str, Any]) -> list[str]:
    lines = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        required = set(schema.get("required", ()))
        lines.append(f"Body `{media}`:\n")
        fields = schema.get("properties", {})
        if fields:
            lines += ["| field | type | required | what |", "|---|---|---|---|"]
            for name, field in fields.items():
                lines.append(f"| `{name}` | {prose(_schema_name(field), table=True)} | "
                             f"{'yes' if name in required else 'no'} | "
                             f"{prose(field.get('description') or field.get('title', ''), table=True)} |")
        lines.append("")
    return lines


def openapi_reference() -> str:
    document = openapi_document()
    lines = [(f"Generated from the app's OpenAPI document ({document['info']['title']}, version "
             f"{document['info']['version']}; OpenAPI {document['openapi']}), which a running service serves at "
             "`/openapi.json` and this site at [openapi.json](openapi.json)."), ""]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            lines += [f"### `{method.upper()} {path}`", ""]
            if operation.get("summary"):
                lines += [prose(operation["summary"]), ""]
            if operation.get("description"):
                lines += [prose(operation["description"]), ""]
            parameters = operation.get("parameters", [])
            if parameters:
                lines += ["| parameter | in | type | required |", "|---|---|---|---|"]
                for p in parameters:
                    lines.append(f"| `{p['name']}` | {p['in']} | {prose(_schema_name(p.get('schema', {})), True)} | "
                                 f"{'yes' if p.get('required') else 'no'} |")
                lines.append("")
            if "requestBody" in operation:
                lines += _body_fields(document, operation["requestBody"])
            responses = operation.get("responses", {})
            if responses:
                lines += ["| status | what |", "|---|---|"]
                lines += [f"| {status} | {prose(r.get('description', ''), table=True)} |"
                          for status, r in responses.items()]
                lines.append("")
    return "\n".join(lines)


ROOT = Path(__file__).resolve().parent.parent


def benchmark_results() -> str:
    """benchmarks/RESULTS.md lives beside the benchmarks (outside docs/); the site shows it as its own page."""
    return (ROOT / "benchmarks" / "RESULTS.md").read_text("utf-8")


GENERATORS = {"cli": cli_reference, "diagnoses": diagnoses_reference, "openapi": openapi_reference,
              "benchmarks": benchmark_results}


# ---- the hooks

def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def generated(match: re.Match[str]) -> str:
        what = match.group("what")
        if what not in GENERATORS:
            raise ValueError(f"{page.file.src_uri}: no generator for {what!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[what]()

    return MARKER.sub(generated, markdown)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "openapi.json",
                                content=json.dumps(openapi_document(), indent=2) + "\n"))
    return files
