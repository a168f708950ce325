"""The sandbox's tiers and limits: what each tier grades, what `grade doctor` reports, and the job watch loop.

The attacks themselves live in test_attacks.py; these tests pin the mechanisms (tier choice, the memory
limit, cgroup clean-up, a leftover holding the channel, the require-sandbox guard) at every tier.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.grading import pipeline as grading
from grader.model.job import Cell, Invocation, Job, Limits
from grader.sandbox import doctor, rootfs, tiers
from grader.sandbox.client import SANDBOX_CHOICES, SandboxFailure, ZygoteClient
from grader.sandbox.proctree import descendants_by_scan, name_of
from grader.sandbox.zygote import SPARE_NAME

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "ex03.py"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")


@pytest.fixture(scope="module")
def numpy_workers(sandbox_workers):
    return lambda tier, cgroups=True: sandbox_workers(tier, cgroups, framework="numpy")


def run_source(worker: ZygoteClient, source: str, probe: str, limits: dict | None = None):
    """Run `probe(ctx)` from a probe module made of `source`, in the worker's sandbox; the raw Outcome."""
    job = Job(exercise="sandbox-test", module_name="submission", probe_source=source,
              cells=(Cell("submission.py", ""),), invocations=(Invocation(probe, probe, {}),), devices=("cpu",),
              limits=Limits.from_wire(limits or {"timeout": 10.0, "memory_mib": 1024}))
    return worker.run(job)


def fields(outcome) -> dict:
    result = outcome.results[0]
    assert result.ok, result
    return result.fields


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["auto", "userns", "process", "none"])
def test_every_tier_grades_the_reference_solution_to_full_marks_and_says_which_tier(tier, workers):
    with ZygoteClient("torch", sandbox=tier) as worker:
        report = grading.grade("ex03", SOLUTION, device="cpu", worker=worker)
        assert report.full_marks, report.error
        assert report.sandbox["tier"] == worker.tier
        if tier in ("process", "none"):
            assert worker.tier == tier
        if worker.tier == "namespaces":
            assert {"pid-namespace", "network-namespace", "private-filesystem"} <= set(report.sandbox["defences"])


@linux_only
def test_auto_picks_namespaces_where_the_kernel_allows_them(numpy_workers):
    plan = numpy_workers("auto").info()["sandbox"]
    assert plan["tier"] in tiers.names()
    if plan["tier"] != "namespaces":
        pytest.skip("namespaces unavailable here: " + "; ".join(plan["notes"]))
    assert plan["notes"] == []


@linux_only
@pytest.mark.slow
def test_inside_the_namespaces_tier_the_doors_are_shut(numpy_workers):
    worker = numpy_workers("auto")
    if worker.tier != "namespaces":
        pytest.skip("namespaces unavailable here")
    probe = (
        "import os\n"
        "def look(ctx):\n"
        "    mounts = open('/proc/self/mounts').read()\n"
        "    return {'pid': os.getpid(), 'uid': os.getuid(), 'cwd': os.getcwd(),\n"
        "            'root': sorted(os.listdir('/')), 'procs': len([p for p in os.listdir('/proc') if p.isdigit()]),\n"
        f"            'repo': os.path.exists({str(ROOT / 'solutions')!r}),"
        f" 'grader_src': os.path.exists({str(ROOT / 'grader')!r}),\n"
        f"            'python': os.path.isdir({sys.base_prefix!r}), 'venv': os.path.isdir({sys.prefix!r}),\n"
        "            'usr_writable': os.access('/usr', os.W_OK), 'tmp_writable': os.access('/tmp', os.W_OK),\n"
        "            'home': os.environ['HOME'], 'hostname': os.uname().nodename,\n"
        "            'ro_usr': ' /usr ' in mounts and 'ro,' in mounts.split(' /usr ')[1][:40],\n"
        "            'fds': len(os.listdir('/proc/self/fd'))}\n"
    )
    seen = fields(run_source(worker, probe, "look"))
    assert seen["pid"] == 1 and seen["procs"] == 1  # PID 1 of its own namespace, alone
    assert seen["uid"] != 0
    assert seen["cwd"] == seen["home"] == rootfs.SANDBOX_HOME
    assert not seen["grader_src"] and not seen["repo"]
    assert seen["python"] and seen["venv"]
    assert not seen["usr_writable"] and seen["tmp_writable"] and seen["ro_usr"]
    assert seen["hostname"] == "sandbox"
    assert seen["fds"] == 5  # stdin, stdout, stderr, the result pipe, and listdir's own: nothing of the worker's
    tops = {p.strip("/").split("/")[0] for p in (*rootfs.SYSTEM_PATHS, *rootfs.python_paths())}
    assert {"proc", "dev", "tmp", "usr"} <= set(seen["root"]) <= tops | {"proc", "dev", "tmp"}


UNSHARE = shutil.which("unshare")


@linux_only
@pytest.mark.slow
@pytest.mark.skipif(not UNSHARE or os.geteuid() != 0, reason="needs root and unshare(1) to play a plain user")
@pytest.mark.parametrize("submission", ["solution", "read_references"])
def test_a_grader_that_is_not_root_gets_namespaces_through_a_user_namespace(submission, tmp_path):
    # The whole `grade` command runs as uid 1000 of a user namespace: not root, no capabilities.
    source = SOLUTION.read_text("utf-8") if submission == "solution" else \
        (ROOT / "tests" / "attacks" / "read_references.py").read_text("utf-8").replace("@@REPO@@", str(ROOT))
    path = tmp_path / "ex03.py"
    path.write_text(source, "utf-8")
    as_user = [UNSHARE, "--user", "--map-user=1000", "--map-group=1000"]
    probe = subprocess.run([*as_user, sys.executable, "-c", "import os; print(os.geteuid())"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare --user does not work here: {probe.stderr.strip()}")
    assert probe.stdout.strip() == "1000"
    result = subprocess.run([*as_user, sys.executable, "-m", "grader.cli", "ex03", str(path), "--format", "json",
                             "--device", "cpu"], capture_output=True, text=True, check=False, cwd=tmp_path,
                            timeout=300)
    report = json.loads(result.stdout)
    assert report["sandbox"]["tier"] == "namespaces", report["sandbox"]
    assert "user-namespace" in report["sandbox"]["defences"]
    assert report["full_marks"] is (submission == "solution")
    assert "LEAK" not in report["output"]


def test_the_private_view_never_binds_the_course_repository():
    for path in rootfs.python_paths():
        assert not (ROOT / "solutions").resolve().is_relative_to(path)
        assert not (ROOT / "exercises").resolve().is_relative_to(path)


@pytest.mark.slow
@pytest.mark.parametrize(("tier", "cgroups"), [("auto", True), ("userns", True), ("userns", False),
                                               ("process", False)])
def test_the_memory_limit_stops_an_allocation_and_says_so(tier, cgroups, numpy_workers):
    worker = numpy_workers(tier, cgroups)
    probe = "def hog(ctx):\n    blocks = [bytearray(32 << 20) for _ in range(40)]\n    return {'n': len(blocks)}\n"
    outcome = run_source(worker, probe, "hog", {"timeout": 20.0, "memory_mib": 300})
    assert outcome.memory_exceeded
    assert not outcome.results
    for directory in worker.info()["sandbox"].get("cgroups", {}).values():
        assert not [n for n in os.listdir(directory) if n.startswith("job-")]


@pytest.mark.slow
def test_a_leftover_holding_the_channel_does_not_hold_the_job_until_the_deadline(numpy_workers):
    worker = numpy_workers("process")  # no PID namespace: the leftover would survive its parent
    probe = ("import os, time\n"
             "def leave(ctx):\n"
             "    if os.fork() == 0:\n"
             "        os.setsid()\n"
             "        time.sleep(60)\n"
             "    return {'ok': 1}\n")
    outcome = run_source(worker, probe, "leave", {"timeout": 30.0, "memory_mib": 1024})
    assert fields(outcome) == {"ok": 1.0}
    assert not outcome.timed_out
    assert outcome.done


@pytest.mark.slow
def test_require_namespace_tier_refuses_a_weaker_worker(numpy_workers):
    with pytest.raises(doctor.SandboxTooWeak, match="'process' tier"):
        doctor.require_namespace_tier(numpy_workers("process"))
    best = numpy_workers("auto")
    if best.tier == "namespaces":
        assert doctor.require_namespace_tier(best)["tier"] == "namespaces"
        assert doctor.require_namespace_tier()["tier"] == "namespaces"  # starts and stops its own worker
    else:
        with pytest.raises(doctor.SandboxTooWeak):
            doctor.require_namespace_tier()


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["auto", "process"])
def test_grade_doctor_reports_what_the_self_test_observed(tier):
    result = CliRunner().invoke(main, ["doctor", "--sandbox", tier])
    assert result.exit_code == 0, result.output
    found = doctor.examine(tier)
    assert f"Sandbox tier: {found['plan']['tier']}" in result.output
    inside = found["inside"]
    if found["plan"]["tier"] == "namespaces":
        assert inside["pid"] == 1
        assert inside["network"].startswith("blocked")
        assert not inside["repo_visible"] and not inside["file_appeared_outside"]
        assert inside["signal_grader"] in ("ProcessLookupError", "PermissionError")
        assert int(inside["cap_eff"], 16) == 0
    else:
        assert "WARNING" in result.output
        assert "NOT DEFENDED" in result.output  # the network is open below the namespaces tier
    assert not inside.get("canary_visible")


@pytest.mark.slow
def test_a_required_namespaces_tier_is_never_quietly_weakened(numpy_workers):
    worker = ZygoteClient("numpy", sandbox="namespaces")
    try:
        if numpy_workers("auto").tier == "namespaces":
            assert worker.tier == "namespaces"
        else:
            with pytest.raises(SandboxFailure, match="namespaces sandbox tier was required"):
                worker.info()
            assert not worker.alive
    finally:
        worker.close()


def test_unknown_tiers_are_refused():
    assert set(SANDBOX_CHOICES) >= {"auto", "namespaces", "userns", "process", "none"}
    with pytest.raises(ValueError):
        ZygoteClient("numpy", sandbox="chroot")



@linux_only
@pytest.mark.slow
def test_a_python_that_lives_under_tmp_still_gets_the_namespaces_tier(tmp_path, numpy_workers):
    # CI may clone into /tmp, putting the venv under the path the sandbox replaces with a fresh tmpfs;
    # the venv must be bound on top of that tmpfs, not hidden by it.
    if numpy_workers("auto").tier != "namespaces":
        pytest.skip("this machine does not reach the namespaces tier at all")
    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = next(venv.glob("lib/python*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site_packages / "borrow.pth").write_text(f"import site; site.addsitedir({ours!r})\n", "utf-8")
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "grader.cli", "doctor", "--json"],
                            capture_output=True, text=True, check=False, cwd=tmp_path, timeout=300)
    report = json.loads(result.stdout)
    assert report["job"]["tier"] == "namespaces", report


def _memory_hits(pid: int, needle: bytes) -> int:
    """How often `needle` occurs in the readable memory of process `pid` (needs root: the worker is not dumpable)."""
    hits = 0
    with open(f"/proc/{pid}/maps", encoding="ascii") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields_ = line.split()
            if not fields_[1].startswith("r"):
                continue
            start, end = (int(x, 16) for x in fields_[0].split("-"))
            try:
                mem.seek(start)
                hits += mem.read(end - start).count(needle)
            except (OSError, ValueError, OverflowError):
                continue
    return hits


@pytest.mark.slow
@linux_only
@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
@pytest.mark.parametrize("tier", ["auto", "process"])
def test_the_worker_children_are_forked_from_never_holds_a_job_its_output_or_its_results(tier, tmp_path):
    # Every child is a fork of the worker: whatever the worker read, every later child could read back from
    # its own memory. A unique marker in the source, in the printed output and in a result must not be there.
    marker = f"neighbour-marker-{os.urandom(8).hex()}"
    source = SOLUTION.read_text("utf-8") + f"\n# {marker}\nprint({marker!r})\n" + (
        f"_train = train\n\ndef train(*args, **kwargs):\n    history = _train(*args, **kwargs)\n"
        f"    raise ValueError({marker!r})\n")
    path = tmp_path / "ex03.py"
    path.write_text(source, "utf-8")
    with ZygoteClient("torch", sandbox=tier) as worker:
        report = grading.grade("ex03", path, device="cpu", worker=worker)
        assert marker in report.output  # it did run, print, and raise with the marker
        assert any(marker in c.message for c in report.checks)
        assert _memory_hits(worker.process.pid, marker.encode()) == 0
        assert _memory_hits(worker.process.pid, b"def _as_weight(") == 0  # nor the solution's own code
        # nor the spare child already forked for the next job (it was forked after this job ended)
        spare = _wait_for_spare(worker)
        assert _memory_hits(spare, marker.encode()) == 0
        assert _memory_hits(spare, b"def _as_weight(") == 0
        # and it still grades the next submission, which finds nothing of this one
        assert grading.grade("ex03", SOLUTION, device="cpu", worker=worker).full_marks


def _wait_for_spare(worker: ZygoteClient, patience_s: float = 10.0) -> int:
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        spares = [pid for pid in descendants_by_scan(worker.process.pid) if name_of(pid) == SPARE_NAME]
        if spares:
            assert len(spares) == 1, spares
            return spares[0]
        time.sleep(0.01)
    raise AssertionError("the worker forked no spare child for its next job")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().split(b")")[-1].split()[0] in (b"Z", b"X")  # a zombie: dead, its reaper late
    except OSError:
        return True


@linux_only
@pytest.mark.parametrize("how", ["closed", "killed"])
def test_the_spare_child_never_outlives_its_worker(how, tmp_path):
    # The spare waits, holding nothing, for the next job's descriptors; its worker closed by the parent or
    # SIGKILLed (its own socket then reads end of file, and PR_SET_PDEATHSIG fires), it goes too.
    worker = ZygoteClient("numpy")
    try:
        assert grading.grade("ex01", ROOT / "solutions" / "ex01.py", device="cpu", worker=worker).full_marks
        spare = _wait_for_spare(worker)
        if how == "closed":
            worker.close()
        else:
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
        deadline = time.monotonic() + 5.0
        while not _gone(spare) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(spare), f"the spare child {spare} outlived its worker ({how})"
    finally:
        worker.close()


@linux_only
@pytest.mark.parametrize("tier", ["auto", "process"])
def test_a_spare_that_died_waiting_leaves_nothing_and_the_job_forks_its_own_child(tier):
    # The fallback: the spare is gone when its job comes (killed from outside: a submission cannot reach it).
    # The job still runs at its tier with its limits, and nothing of the dead spare stays: no cgroup, no
    # working directory in the worker's scratch folder, no process.
    with ZygoteClient("numpy", sandbox=tier) as worker:
        plan = worker.info()["sandbox"]
        assert grading.grade("ex01", ROOT / "solutions" / "ex01.py", device="cpu", worker=worker).full_marks
        spare = _wait_for_spare(worker)
        os.kill(spare, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while not _gone(spare) and time.monotonic() < deadline:
            time.sleep(0.01)
        report = grading.grade("ex01", ROOT / "solutions" / "ex01.py", device="cpu", worker=worker)
        assert report.full_marks and report.sandbox["tier"] == plan["tier"]
        assert report.sandbox["memory"] == ("cgroup" if "memory" in plan["cgroups"] else "rss-watchdog")
        below = descendants_by_scan(worker.process.pid)
        assert spare not in below and [name_of(pid) for pid in below] in ([], [SPARE_NAME])
        for directory in plan["cgroups"].values():  # the new spare's cgroup alone
            assert len([n for n in os.listdir(directory) if n.startswith(("spare-", "job-"))]) <= 1
        scratch = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"grader-zygote-{worker.process.pid}-*")]
        assert len(scratch) == 1 and len(list(scratch[0].iterdir())) <= 1  # the new spare's directory alone
