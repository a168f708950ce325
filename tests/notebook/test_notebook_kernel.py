"""`grader.notebook` in a real kernel: ipykernel started by nbclient runs the cells a student would write (split,
out of order, redefined, crashing, never run), and the tests read the display data the kernel sends back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

import pytest
from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient", reason="the dev extra (ipykernel, nbclient) is not installed")
pytest.importorskip("ipykernel")

# The tutorial and the out-of-order notebook run in the quick subset (`-m "not slow"`): a kernel each, seconds.
KERNEL_TIMEOUT_S = 300  # a cold worker on a loaded machine, then the grading itself
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
STUB = (ROOT / "exercises" / "ex03" / "stub.py").read_text("utf-8")


def split_functions(source: str) -> dict[str, str]:
    """The top-level chunks of a module (imports, each def) by the name they define."""
    chunks: dict[str, str] = {}
    current, lines = "imports", []
    for line in source.splitlines():
        match = re.match(r"(def|class) (\w+)", line)
        if match:
            chunks[current] = chunks.get(current, "") + "\n".join(lines) + "\n"
            current, lines = match.group(2), []
        lines.append(line)
    chunks[current] = chunks.get(current, "") + "\n".join(lines) + "\n"
    return chunks


class Kernel:
    """A notebook whose cells are run one by one, in the order a test says, in one real kernel."""

    def __init__(self, cells: list[str], cwd: Path):
        self.notebook = nbformat.v4.new_notebook()
        self.notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        self.client = nbclient.NotebookClient(self.notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                                              allow_errors=True, resources={"metadata": {"path": str(cwd)}})

    def __enter__(self) -> Self:
        self._context = self.client.setup_kernel()
        self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)

    def run(self, *indices: int) -> list[dict]:
        """Run the cells at `indices` in that order; the outputs of the last one."""
        for index in indices:
            self.notebook.cells[index].outputs = []
            self.client.execute_cell(self.notebook.cells[index], index)
        return self.notebook.cells[indices[-1]].outputs

    def add(self, source: str) -> int:
        self.notebook.cells.append(nbformat.v4.new_code_cell(source))
        return len(self.notebook.cells) - 1


def shown(outputs: list[dict], mime: str) -> str:
    """What the kernel sent as `mime` (the result and any display), joined; HTML's entities decoded."""
    import html

    decode = html.unescape if mime == "text/html" else str
    return "\n".join(decode(str(o.get("data", {}).get(mime, ""))) for o in outputs
                     if o.get("output_type") in ("execute_result", "display_data", "update_display_data"))


def errors(outputs: list[dict]) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"]


def visible_points(exercise: str) -> float:
    from grader.course import exercises

    return sum(c.points for c in exercises.load(exercise).checks if c.visibility == "visible")


def hidden_points(exercise: str) -> float:
    from grader.course import exercises

    return sum(c.points for c in exercises.load(exercise).checks if c.visibility == "hidden")


def test_out_of_order_redefined_crashing_and_unrun_cells_grade_what_the_kernel_ran(tmp_path):
    parts = split_functions(SOLUTION)
    parts["train"] = "".join(v for k, v in parts.items() if k not in ("imports", "forward", "loss"))
    buggy_loss = "def loss(y, y_pred):\n    return ((y_pred - y) ** 2).sum()\n"
    cells = [
        "from grader.notebook import check",                     # 0
        parts["imports"],                                         # 1
        parts["train"],                                           # 2  run before forward: fine, as in Jupyter
        parts["forward"],                                         # 3
        buggy_loss,                                               # 4
        parts["loss"],                                            # 5  the redefinition that fixes it
        "1 / 0",                                                  # 6  a crash in a cell
        "def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):\n    return []\n",  # 7 edited, never run
        'result = check("ex03")\nresult',                          # 8
        "print(result.score, result.max_score, result.passed)",   # 9
    ]
    with Kernel(cells, tmp_path) as kernel:
        assert errors(kernel.run(0)) == []
        kernel.run(1, 3, 2, 4, 5)
        assert errors(kernel.run(6))  # the student saw it fail
        outputs = kernel.run(8)
        assert errors(outputs) == []
        html, text = shown(outputs, "text/html"), shown(outputs, "text/plain")
        full = visible_points("ex03")
        assert f"{full:g} / {full:g}" in html and f"{full:g}/{full:g}" in text
        raw = outputs[-1]["data"]["text/html"]
        assert "<script" not in raw.lower() and "http://" not in raw and "https://" not in raw, raw
        hidden = hidden_points("ex03")
        assert f"worth {hidden:g} more points are graded at submission" in html
        assert "All checks passed" not in text and "All checks passed" not in html
        assert "ZeroDivisionError" in html and "cell 7" in html  # the crashing cell, by its In [N]: the 7th run
        said = kernel.run(9)
        assert f"{full:.1f} {full:.1f} True" in "".join(o.get("text", "") for o in said)

        # Run the buggy loss again: it is the kernel's loss now, so it is what gets graded.
        kernel.run(4)
        again = kernel.run(8)
        html = shown(again, "text/html")
        assert "loss(y, y_pred)" in html and "failed" in html
        assert f"{full:g} / {full:g}" not in html


@pytest.mark.slow
def test_the_untouched_stub_is_not_attempted_said_once(tmp_path):
    cells = [STUB, "from grader.notebook import check\ncheck('ex03')"]
    with Kernel(cells, tmp_path) as kernel:
        outputs = kernel.run(0, 1)
    html, text = shown(outputs, "text/html"), shown(outputs, "text/plain")
    assert "not attempted" in text.lower()
    assert html.lower().count("not attempted") == 1 and text.lower().count("not attempted") == 1
    assert "Not implemented yet" not in html  # not a wall of failures
    assert "FAIL" not in text


@pytest.mark.slow
def test_a_notebook_with_two_exercises_checks_each_and_lists_both(tmp_path):
    ex01 = (ROOT / "solutions" / "ex01.py").read_text("utf-8")
    ex02 = (ROOT / "solutions" / "ex02.py").read_text("utf-8")
    cells = ["# ex01 then ex02\n" + ex01, ex02, "%load_ext grader", "%grade ex02",
             "from grader.notebook import check_all\ncheck_all()", "%grade ex09", "%grade"]
    with Kernel(cells, tmp_path) as kernel:
        kernel.run(0, 1, 2)
        graded = kernel.run(3)
        listed = kernel.run(4)
        unknown = kernel.run(5)
        usage = kernel.run(6)
    points = visible_points("ex02")
    assert f"{points:g} / {points:g}" in shown(graded, "text/html")
    lines = shown(listed, "text/plain").strip().strip("'").splitlines()
    assert [line.split(":")[0] for line in lines] == ["ex01", "ex02"]
    assert all("on the visible checks, all of them passed" in line for line in lines)
    assert "there is no exercise 'ex09'" in shown(unknown, "text/plain") and errors(unknown) == []
    assert "usage: %grade EX" in shown(usage, "text/plain") and errors(usage) == []


@pytest.mark.slow
def test_a_weaker_sandbox_tier_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADE_NOTEBOOK_SANDBOX", "process")
    cells = [SOLUTION, "from grader.notebook import check\ncheck('ex03')"]
    with Kernel(cells, tmp_path) as kernel:
        outputs = kernel.run(0, 1)
    assert 'Graded at the "process" sandbox tier' in shown(outputs, "text/html")
    assert "grade doctor" in shown(outputs, "text/plain")


@pytest.mark.slow
def test_the_kernel_never_imports_torch_for_grading_and_the_host_ends_with_it(tmp_path):
    cells = [("import sys, os\nfrom grader.notebook import check, _host\n"
             "r = check('ex01')\nprint('torch' in sys.modules, _host.process.pid)")]
    with Kernel(cells, tmp_path) as kernel:
        out = "".join(o.get("text", "") for o in kernel.run(0))
        torch_loaded, pid = out.split()
        assert torch_loaded == "False"
        assert Path(f"/proc/{pid}").exists()
    import time

    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
        if status == "Z":
            break
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or status == "Z", "the grading host outlived its kernel"


class Recording(nbclient.NotebookClient):
    """Keeps every message the kernel sends, so a test sees the progress line's updates too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages: list[dict] = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append(msg)
        return super().process_message(msg, cell, cell_index)


@pytest.mark.service
@pytest.mark.slow
def test_submit_to_a_real_service_shows_progress_then_the_student_view(tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="the service extra is not installed")
    from service_support import Server, free_port, token

    db = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    alice = token(db, "student", "alice")
    server = Server(db, env={"GRADE_SERVICE_RATE": "1/600"}).start()
    try:
        monkeypatch.setenv("GRADE_TOKEN", alice)
        cells = [SOLUTION, f"from grader.notebook import submit\nsubmit('ex03', url={server.url!r})",
                 f"submit('ex03', url={server.url!r})",
                 f"submit('ex03', url={server.url!r}, token='not-a-token')",
                 f"submit('ex03', url='http://127.0.0.1:{free_port()}')"]
        with Kernel(cells, tmp_path) as kernel:
            kernel.client.__class__ = Recording
            kernel.client.messages = []
            graded = kernel.run(0, 1)
            progress = [m["content"]["data"].get("text/plain", "") for m in kernel.client.messages
                        if m["msg_type"] in ("display_data", "update_display_data")]
            limited, refused, unreachable = kernel.run(2), kernel.run(3), kernel.run(4)
    finally:
        server.stop()
    assert any(re.search(r"ex03: (queued|running)", line) for line in progress), progress
    assert re.search(r"ex03: graded in \d+ s", progress[-1]), progress
    html = shown(graded, "text/html")
    full = visible_points("ex03") + hidden_points("ex03")
    assert f"{full:g} / {full:g}" in html and "(hidden)" in html and "full marks" in html
    assert "graded at submission" not in html  # they were graded
    for outputs, said in ((limited, r"too many submissions for now \(429\): try again in \d+ s"),
                          (refused, r"did not accept your token \(401\)"),
                          (unreachable, r"cannot reach the grading service at http://127\.0\.0\.1:\d+")):
        line = shown(outputs, "text/plain").strip()
        assert errors(outputs) == [] and re.search(said, line), line
        assert "\n" not in line.strip("'")


@pytest.mark.service
@pytest.mark.slow
def test_submit_sends_what_check_grades_and_hides_hidden_details(tmp_path, monkeypatch):
    """The service's student view: a hidden check failed keeps its name and points, not its message."""
    pytest.importorskip("fastapi", reason="the service extra is not installed")
    from service_support import Server, token

    db = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    alice = token(db, "student", "alice")
    server = Server(db).start()
    buggy = (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_text("utf-8")
    try:
        cells = [buggy, "def train(x, y):\n    pass\n",  # an edit never run: not sent
                 f"from grader.notebook import submit\nsubmit('ex03', {server.url!r}, {alice!r})"]
        with Kernel(cells, tmp_path) as kernel:
            outputs = kernel.run(0, 2)
        rows = server.get("/api/v1/submissions?exercise=ex03", alice).json()
        report = server.get(f"/api/v1/submissions/{rows[0]['id']}/report", alice).json()
    finally:
        server.stop()
    html = shown(outputs, "text/html")
    assert "grad-not-zeroed" in html
    hidden = [c for c in report["checks"] if c["visibility"] == "hidden"]
    assert hidden and all(c["diagnosis"] is None for c in hidden)
    assert report["submission"]["kind"] == "ipynb" and report["checks"][4]["status"] == "failed"


TUTORIAL = ROOT / "examples" / "notebook_tutorial.ipynb"


def test_the_tutorial_notebook_runs_from_the_stub_to_full_marks(tmp_path):
    """The tutorial executed as a student would run it, top to bottom, so that it never rots."""
    notebook = nbformat.read(TUTORIAL, as_version=4)
    nbclient.NotebookClient(notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    checks = [c for c in notebook.cells if c.cell_type == "code" and "check(" in c.source]
    said = [shown(c.outputs, "text/html") for c in checks]
    full = visible_points("ex03")
    assert "not attempted yet" in said[0]
    assert "Not attempted yet: `train`" in shown(checks[1].outputs, "text/plain")
    assert "grad-not-zeroed" in said[2] and "Training curves" in said[2]
    assert f"{full:g} / {full:g}" in said[3]
    assert f"worth {hidden_points('ex03'):g} more points are graded at submission" in said[3]
    magic = next(c for c in notebook.cells if c.source.strip() == "%grade ex03")
    assert f"{full:g} / {full:g}" in shown(magic.outputs, "text/html")
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") == "error"]
