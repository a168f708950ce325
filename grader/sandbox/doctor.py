"""`grade doctor`: which sandbox tier this machine reaches, what each defence relies on, checked from inside.

The tier is the one a worker decided by building the sandbox in a throw-away child when it started. The
doctor then runs a self-test through the very same path a submission takes (a job in a forked child) and
tries the doors from inside: the network, the course repository, a file outside, the grader's process,
the grader's environment. It reports what it observed, not what it hopes.
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.model.job import Cell, Invocation, Job, Limits
from grader.sandbox import tiers
from grader.sandbox.client import ZygoteClient
from grader.sandbox.protocol import Ready
from grader.sandbox.tiers import Tier, at_least

CANARY_NAME = "GRADER_DOCTOR_CANARY"

SELF_TEST = '''
import os


def selftest(ctx, port, repo, outside, grader_pid, canary_name):
    found = {"pid": os.getpid(), "uid": os.getuid()}
    try:
        import errno, socket  # lazy imports: they also show whether the standard library is visible
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            found["network"] = "reached the grader's listener"
        except OSError as exc:
            found["network"] = "blocked (" + (errno.errorcode.get(exc.errno or 0) or type(exc).__name__) + ")"
        found["stdlib_importable"] = True
    except ImportError as exc:
        found["network"] = "not checked (" + type(exc).__name__ + ")"
        found["stdlib_importable"] = False
    found["repo_visible"] = os.path.exists(repo)
    try:
        with open(os.path.join(outside, "written-from-the-sandbox"), "w") as handle:
            handle.write("x")
        found["wrote_outside"] = "no error"
    except OSError as exc:
        found["wrote_outside"] = type(exc).__name__
    try:
        os.kill(grader_pid, 0)
        found["signal_grader"] = "allowed"
    except OSError as exc:
        found["signal_grader"] = type(exc).__name__
    found["canary_visible"] = canary_name in os.environ
    found["env_names"] = ",".join(sorted(os.environ))
    try:
        with open("/proc/self/status") as handle:
            status = dict(l.split(":", 1) for l in handle if ":" in l)
        found["cap_eff"] = status.get("CapEff", "?").strip()
        found["seccomp"] = {"0": "off", "1": "strict", "2": "filter"}.get(status.get("Seccomp", "").strip(), "?")
        found["visible_processes"] = len([n for n in os.listdir("/proc") if n.isdigit()])
    except OSError as exc:
        found["cap_eff"] = "unreadable (" + type(exc).__name__ + ")"
    import resource  # loaded by the worker already
    for name in ("CPU", "FSIZE", "NOFILE", "CORE", "NPROC"):
        found["rlimit_" + name.lower()] = str(resource.getrlimit(getattr(resource, "RLIMIT_" + name))[1])
    return found
'''


class SandboxTooWeak(RuntimeError):
    """This machine cannot reach the tier a caller requires (e.g. `grade batch --require-sandbox`)."""


def require_namespace_tier(worker: ZygoteClient | None = None) -> dict[str, Any]:
    """The sandbox plan, or SandboxTooWeak when jobs would run below the namespaces tier.

    Pass the worker that will grade, so the answer is about it; without one, a NumPy worker (no torch
    import) is started just to ask.
    """
    own = worker is None
    worker = worker or ZygoteClient("numpy")
    try:
        plan = Ready.from_wire(worker.info()).sandbox
    finally:
        if own:
            worker.close()
    tier = str(plan.get("tier", Tier.UNKNOWN))
    if not at_least(tier, Tier.NAMESPACES):
        why = "; ".join(plan.get("notes", [])) or "no namespaces on this platform"
        needs = entry.needs if (entry := tiers.lookup(Tier.NAMESPACES)) else "namespaces"
        raise SandboxTooWeak(f"the sandbox here only reaches the {tier!r} tier, below 'namespaces' ({why}). "
                             f"Grade on {needs}.")
    return plan


def examine(sandbox: str = "auto") -> dict[str, Any]:
    """Start a worker, read its plan, and run the self-test inside its sandbox."""
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="grader-doctor-") as outside, \
            socket.create_server(("127.0.0.1", 0)) as listener:
        os.chmod(outside, 0o777)  # so that only the sandbox, not file permissions, can stop the write
        os.environ[CANARY_NAME] = "visible"
        try:
            with ZygoteClient("numpy", sandbox=sandbox) as worker:
                plan = Ready.from_wire(worker.info()).sandbox
                outcome = worker.run(_job(listener.getsockname()[1], repo, outside))
        finally:
            os.environ.pop(CANARY_NAME, None)
        wrote = os.path.exists(os.path.join(outside, "written-from-the-sandbox"))
    hello = outcome.hello
    result = next(iter(outcome.results), None)
    if result is not None and result.ok and isinstance(result.fields, dict):
        inside = dict(result.fields)
    else:
        inside = {"error": asdict(result.error) if result and result.error else "no result"}
    inside["file_appeared_outside"] = wrote
    found = {"plan": plan, "job": (hello.tier if hello else None) or {}, "inside": inside,
             "defences": defences(plan, inside, repo),
             "environment": environment()}
    if "error" in inside:  # say so rather than report what nobody observed
        found["defences"] = [(name, relies_on, "not checked: the self-test did not run")
                             for name, relies_on, _ in found["defences"]]
    return found


def _job(port: int, repo: Path, outside: str) -> Job:
    args = {"port": port, "repo": str(repo / "solutions"), "outside": outside, "grader_pid": os.getpid(),
            "canary_name": CANARY_NAME}
    return Job(exercise="doctor", module_name="doctor_submission", probe_source=SELF_TEST,
               cells=(Cell("doctor_submission.py", ""),), invocations=(Invocation("selftest", "selftest", args),),
               devices=("cpu",), limits=Limits(timeout=20.0, memory_mib=1024))


def defences(plan: dict[str, Any], inside: dict[str, Any], repo: Path) -> list[tuple[str, str, str]]:
    """(defence, what it relies on here, what the self-test saw) for each defence of the threat model."""
    tier = plan.get("tier")
    cgroups = plan.get("cgroups", {})
    entry = tiers.lookup(tier) or tiers.entries()[-1]  # a tier nobody registered: what the weakest defends
    uid_note = ("a user namespace: the student keeps the grader's uid, without capabilities"
                if plan.get("userns")
                else f"a uid of its own ({_int(inside.get('uid'))}, shared with no other process)")
    lines = entry.doctor(plan, uid_note)
    return [
        ("wall-clock timeout", "the worker's deadline (select on the channel and a pidfd), then SIGTERM and "
         "SIGKILL to every process: subreaper children" + (", cgroup.procs" if cgroups else "") + lines.timeout,
         "on"),
        ("memory limit", "memory cgroup v1 (kernel OOM kill)" if "memory" in cgroups
         else "RSS watchdog every 50 ms: resident memory of each process beyond the worker's own", "on"),
        ("fork bomb", "RLIMIT_NPROC " + str(inside.get("rlimit_nproc"))
         + (" counted inside the user namespace" if plan.get("userns") else " for a uid of its own"
            if plan.get("student_uid") else ", shared with every process of the grader's user")
         + (", and pids.max of a pids cgroup" if "pids" in cgroups else ""),
         "on"),
        ("rlimits", "CPU {cpu}, file size {fsize}, open files {nofile}, core {core}".format(
            cpu=inside.get("rlimit_cpu"), fsize=inside.get("rlimit_fsize"), nofile=inside.get("rlimit_nofile"),
            core=inside.get("rlimit_core")), "on"),
        ("no network", lines.network, str(inside.get("network"))),
        ("private filesystem", lines.filesystem,
         "course repository " + ("VISIBLE" if inside.get("repo_visible") else "hidden")
         + "; writing outside " + ("SUCCEEDED" if inside.get("file_appeared_outside") else "failed")),
        ("no signalling the grader", lines.signalling, "kill(grader) → " + str(inside.get("signal_grader"))),
        ("scrubbed environment", "the worker starts with a fixed environment; the child clears it again",
         "grader's canary " + ("VISIBLE" if inside.get("canary_visible") else "not visible")),
        ("privileges", lines.privileges, f"CapEff {inside.get('cap_eff')}"),
        ("system calls", "seccomp filter: no nested namespaces, mount, ptrace, kernel modules, BPF, keyrings, "
         "io_uring" if entry.seccomp and platform.machine() == "x86_64"
         else "NOT DEFENDED (the filter is written for x86_64)", f"seccomp {inside.get('seccomp')}"),
        ("output and results", ("stdout/stderr to a file capped by RLIMIT_FSIZE, 64 KiB kept; the channel "
                                "capped in size and count, only finite numbers, no pickle"), "on"),
    ]


TORCH_PROBE = """
import json, torch
devices = []
if torch.cuda.is_available():
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(json.dumps({"torch": torch.__version__, "cuda_build": torch.version.cuda, "devices": devices}))
"""

# What grading loses without each piece (grade doctor prints it beside each missing one).
COSTS = {
    "numpy": "nothing can be graded: every comparison is NumPy (reinstall the grader)",
    "torch": "the torch exercises cannot be graded (every check errors); the NumPy ones still can",
    "cuda": "--device cuda is refused; grading on the CPU is unaffected",
    "matplotlib": "no --plot, no curves in --html and --feedback pages, no plot in PrairieLearn results "
                  "(pip install 'dl-grader[plot]')",
    "copydetect": "no `grade similarity` / `batch --similarity` (pip install 'dl-grader[similarity]')",
    "yaml": "no `batch --layout gradescope` (reading submission_metadata.yml; pip install 'dl-grader[instructor]')",
}


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment(torch_timeout_s: float = 120.0) -> dict[str, Any]:
    """Python, numpy, torch and its CUDA devices, and the optional pieces, each with what its absence costs.

    torch is asked in a child process: the grader's own process never imports it.
    """
    import json
    import subprocess
    import sys

    found: dict[str, Any] = {"python": platform.python_version(), "numpy": _version("numpy"),
                             "matplotlib": _version("matplotlib"), "copydetect": _version("copydetect"),
                             "yaml": _version("PyYAML")}
    try:
        done = subprocess.run([sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True,
                              timeout=torch_timeout_s, check=False)
        answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        answer = {}
    found["torch"] = answer.get("torch")
    found["cuda_build"] = answer.get("cuda_build")
    found["cuda_devices"] = list(answer.get("devices") or [])
    missing = {name: COSTS[name] for name in ("numpy", "torch", "matplotlib", "copydetect", "yaml")
               if not found[name]}
    if not found["cuda_devices"]:
        missing["cuda"] = COSTS["cuda"]
    found["missing"] = missing
    return found


def render_environment(found: dict[str, Any]) -> list[str]:
    def shown(name: str) -> str:
        return found.get(name) or "MISSING"

    devices = ", ".join(found.get("cuda_devices") or []) or "none"
    build = f"CUDA {found['cuda_build']} build" if found.get("cuda_build") else "CPU build"
    lines = ["Environment:",
             f"  python {found.get('python')}, numpy {shown('numpy')}, torch {shown('torch')}"
             + (f" ({build})" if found.get("torch") else ""),
             f"  CUDA devices: {devices}",
             f"  matplotlib {shown('matplotlib')}, copydetect {shown('copydetect')}, PyYAML {shown('yaml')}"]
    for name, cost in (found.get("missing") or {}).items():
        lines.append(f"  without {name}: {cost}")
    return lines


def _int(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


def render(found: dict[str, Any]) -> str:
    plan = found["plan"]
    tier = str(plan.get("tier", Tier.UNKNOWN))
    lines = [f"Sandbox tier: {tier}" + ("" if at_least(tier, Tier.NAMESPACES) else "  (WARNING: below 'namespaces'; "
                                          "do not grade untrusted work here)")]
    if plan.get("notes"):
        lines += [f"  note: {note}" for note in plan["notes"]]
    if tier == Tier.NAMESPACES:
        bubblewrap = (f"found at {plan['bubblewrap']}, not needed" if plan.get("bubblewrap") else "not installed, "
                      "not needed") + ": the worker enters the same kernel namespaces itself, per submission"
    elif plan.get("requested") in ("process", "none"):
        bubblewrap = "not used: a weaker tier was asked for"
    else:
        bubblewrap = (f"found at {plan['bubblewrap']}, but not used by this grader" if plan.get("bubblewrap")
                      else "not installed") + ": the grader builds its namespaces itself and cannot here"
    lines.append("  running as " + ("root" if plan.get("root") else "an unprivileged user")
                 + ("; user namespace" if plan.get("userns") else "") + f"; bubblewrap {bubblewrap}")
    lines.append("")
    width = max(len(name) for name, _, _ in found["defences"])
    for name, relies_on, seen in found["defences"]:
        lines.append(f"{name.ljust(width)}  {relies_on}")
        if seen != "on":
            lines.append(f"{'':{width}}  seen from inside: {seen}")
    inside = found["inside"]
    lines.append("")
    if "error" in inside:
        lines.append(f"The self-test failed inside the sandbox: {inside['error']}")
    else:
        lines.append(f"Inside the sandbox: pid {_int(inside.get('pid'))}, uid {_int(inside.get('uid'))}, "
                     f"{_int(inside.get('visible_processes'))} visible process(es), "
                     f"environment: {inside.get('env_names')}")
    if found.get("environment"):
        lines += ["", *render_environment(found["environment"])]
    return "\n".join(lines) + "\n"
