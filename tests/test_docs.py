"""The documentation: the site builds with warnings as errors, loads nothing from outside, every link in the
repository's top-level Markdown resolves, and what the code knows (commands and options, codes, metrics, counts,
benchmark figures) is generated from it or held to it here."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ["README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # from another directory: nothing in the build may depend on where it is started
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f",
                             str(ROOT / "mkdocs.yml"), "-d", str(out)],
                            check=False, cwd=out.parent, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line]
    assert warnings == [], warnings
    return out


def test_the_site_builds_strictly_with_every_page_in_the_nav(site):
    for page in ["index", "student", "instructor/batch", "integration/webhooks", "operator/service", "cli",
                 "openapi", "diagnoses", "architecture", "security", "benchmarks", "authoring"]:
        assert (site / f"{page}.html").is_file(), page
    assert (site / "openapi.json").is_file()
    assert "Per exercise" in (site / "benchmarks.html").read_text("utf-8")  # benchmarks/RESULTS.md, included


class Loads(HTMLParser):
    """Every resource a page makes the browser fetch: scripts, stylesheets, images, frames, media."""

    FETCHED: ClassVar[dict[str, str]] = {"script": "src", "link": "href", "img": "src", "iframe": "src",
                                         "source": "src", "audio": "src",
               "video": "src", "embed": "src", "object": "data"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.mermaid = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "link" and attributes.get("rel") in ("canonical", "alternate"):
            return  # not fetched
        wanted = self.FETCHED.get(tag)
        if wanted and attributes.get(wanted):
            self.urls.append(attributes[wanted])
        if "mermaid" in (attributes.get("class") or ""):
            self.mermaid = True  # Material would fetch mermaid.js from a CDN to draw it


def test_the_built_site_loads_nothing_from_outside(site):
    outside = []
    for page in site.rglob("*.html"):
        loads = Loads()
        loads.feed(page.read_text("utf-8"))
        outside += [(page.name, url) for url in loads.urls if urlsplit(url).scheme in ("http", "https")
                    or url.startswith("//")]
        assert not loads.mermaid, page
        assert "fonts.googleapis" not in page.read_text("utf-8"), page
    assert outside == []


def slug(heading: str) -> str:
    """Python-Markdown's toc slug (what MkDocs' anchors are), and close to GitHub's for these headings."""
    text = re.sub(r"[`*_\[\]()]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: Path) -> set[str]:
    return {slug(m.group(2)) for m in HEADING.finditer(markdown.read_text("utf-8"))}


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_link_of_the_top_level_files_resolves(name):
    source = ROOT / name
    broken = []
    for target in LINK.findall(source.read_text("utf-8")):
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "mailto"):
            continue
        path = (source.parent / unquote(parts.path)).resolve() if parts.path else source
        missing_anchor = path.suffix == ".md" and parts.fragment and parts.fragment not in anchors(path) \
            if path.exists() else False
        if not path.exists() or missing_anchor:
            broken.append(target)
    assert broken == [], f"{name}: {broken}"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text("utf-8")
    assert len(text.splitlines()) <= 250
    first_screen = "\n".join(text.splitlines()[:16])
    assert "bash scripts/demo" in first_screen and "bash scripts/test" in first_screen
    for anchor in ("#students-in-a-terminal", "#instructors", "#lms-integrators", "#operators"):
        assert f"]({anchor})" in first_screen, anchor  # every role's start is one click from the first screen
    for role in ("### Students", "### Instructors", "### LMS integrators", "### Operators"):
        assert role in text, role
    assert (ROOT / "scripts" / "demo").is_file() and (ROOT / "scripts" / "test").is_file()


def test_the_student_install_line_brings_the_plots():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert any(d.startswith("matplotlib") for d in project["optional-dependencies"]["plot"])
    wheel = f"dl_grader-{project['version']}-py3-none-any.whl[plot]"
    for page in ("README.md", "docs/student.md"):
        assert f"pip install -c constraints.txt '{wheel}'" in (ROOT / page).read_text("utf-8"), page


def test_the_cli_page_is_generated_from_every_command_and_option():
    hooks = load_hooks()
    from grader.cli.main import main

    assert "<!-- generated: cli -->" in (ROOT / "docs" / "cli.md").read_text("utf-8")
    page = hooks.cli_reference()
    sections = {section.split("`", 1)[0]: section for section in page.split("### `")[1:]}
    sections["grade check"] = sections.pop("grade EX [FILE]")
    for path, options in hooks.cli_options().items():
        section = sections[path]
        for name, default in options.items():
            row = next((line for line in section.splitlines() if re.match(rf"\| `[^`]*{re.escape(name)}\b", line)),
                       None)
            assert row is not None, (path, name)
            if isinstance(default, (int, float, str)) and not isinstance(default, bool):
                assert f"| `{default}` |" in row, (path, name, default)
    assert "### `grade EX [FILE]`" in page
    visible = [name for name, command in main.commands.items() if not command.hidden]
    assert all(f"### `grade {name}" in page for name in visible)
    assert isinstance(main, click.Group)


def test_the_diagnoses_page_is_the_registry_with_its_explanations():
    hooks = load_hooks()
    from grader.grading import diagnose
    from grader.model.codes import CODES

    assert "<!-- generated: diagnoses -->" in (ROOT / "docs" / "diagnoses.md").read_text("utf-8")
    page = hooks.diagnoses_reference()
    for code in CODES:
        assert f"| `{code.value}` | {code.meaning} | {code.since} |" in page
        assert f"### `{code.value}`" in page
    assert len(diagnose.EXPLANATIONS) == len(CODES)


def test_the_openapi_page_lists_every_endpoint_of_the_app():
    pytest.importorskip("fastapi")
    hooks = load_hooks()
    document = hooks.openapi_document()
    page = hooks.openapi_reference()
    for path, operations in document["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in page


def test_the_metrics_page_names_every_metric_of_the_service():
    pytest.importorskip("prometheus_client")
    from grader.service.dispatcher import Metrics

    names = {metric.name for metric in Metrics().registry.collect()}
    page = (ROOT / "docs" / "operator" / "metrics.md").read_text("utf-8")
    documented = set(re.findall(r"^\| `(grade_[a-z_]+)", page, re.MULTILINE))
    assert documented == names


def test_counts_written_in_the_docs_are_the_repositorys():
    corpus = len(list((ROOT / "tests" / "submissions").glob("ex*/*.expected.json")))
    assert f"`tests/submissions/` holds {corpus} submissions" in (ROOT / "docs" / "grading.md").read_text("utf-8")
    attacks = len(list((ROOT / "tests" / "attacks").glob("*.py")))
    assert f"({attacks} submissions in `tests/attacks/`" in (ROOT / "docs" / "security.md").read_text("utf-8")
    exercises = sorted(p.name for p in (ROOT / "exercises").glob("ex*") if p.is_dir())
    table = (ROOT / "docs" / "exercises.md").read_text("utf-8")
    assert [e for e in exercises if f"| {e} |" in table] == exercises
    words = {4: "four", 5: "five", 6: "six", 7: "seven"}
    for page in ("README.md", "docs/index.md"):
        assert f"{words[len(exercises)]} exercises" in (ROOT / page).read_text("utf-8"), page


def test_the_readme_headline_is_the_benchmark_results():
    readme = (ROOT / "README.md").read_text("utf-8")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text("utf-8")
    rows = re.findall(r"^\| (ex0\d)[^|]* \| (\d+ ms) \| (\d+ ms) \| ([\d.]+x) \| ([\d.]+ ms) \| ([\d.]+x) \|$", readme,
                      re.MULTILINE)
    assert len(rows) == len(list((ROOT / "exercises").glob("ex*/spec.toml")))
    for exercise, torch, cold, ratio, warm, speedup in rows:
        row = next(line for line in results.splitlines() if line.startswith(f"| {exercise}"))
        assert all(f"| {figure} |" in row for figure in (torch, cold, ratio, warm, speedup)), exercise


def test_every_benchmark_result_is_dated_with_its_command():
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text("utf-8")
    sections = re.split(r"^## ", results, flags=re.MULTILINE)[1:]
    for section in sections:
        if section.startswith("Headline"):
            continue
        assert re.search(r"Measured 20\d\d-\d\d-\d\d", section), section[:40]
        assert "python benchmarks/" in section, section[:40]
        for script in re.findall(r"python (benchmarks/\w+\.py)", section):
            assert (ROOT / script).is_file(), script


def test_nothing_cites_a_file_the_repository_lacks():
    for path in [*ROOT.glob("grader/**/*.py"), *ROOT.glob("docs/**/*.md"), *(ROOT / n for n in TOP_LEVEL)]:
        assert "CONTRACT" not in path.read_text("utf-8"), path


def test_the_report_page_names_every_schema_version_field_and_status():
    from grader.model.report import SCHEMA_VERSION, RunStatus, schema as report_schema

    page = (ROOT / "docs" / "report.md").read_text("utf-8")
    schema = report_schema()
    versions = re.findall(r"^\| (\d+\.\d+) \|", page, re.MULTILINE)
    assert versions == schema["properties"]["schema_version"]["enum"] and versions[-1] == SCHEMA_VERSION
    assert [field for field in schema["properties"] if f"`{field}`" not in page] == []
    check = schema["properties"]["checks"]["items"]["properties"]
    assert [field for field in check if f"`{field}`" not in page] == []
    assert [status.value for status in RunStatus if f"`{status.value}`" not in page] == []


def test_the_lms_exports_page_describes_every_layout():
    from grader.classroom.layouts import LAYOUTS

    page = (ROOT / "docs" / "instructor" / "lms-exports.md").read_text("utf-8")
    assert f"--layout {'|'.join(LAYOUTS)}" in page
    assert [layout for layout in LAYOUTS[1:] if f"| `{layout}` |" not in page] == []
