"""Closing the doors in a forked child before student code runs: tiers, limits, namespaces, filesystem view.

`prepare()` runs once in the zygote: it finds the strongest tier this machine offers by actually trying
it in a throw-away child, and creates the zygote's cgroups where they are delegated. `enter()` runs in
each forked child and returns what it achieved (the tier and the defences), which every report records.

Tiers, weakest to strongest:
- "none": not Linux (or asked for); a fresh working directory, a scrubbed environment and rlimits.
- "process": rlimits, a scrubbed environment, the process tree killed by the zygote, a seccomp filter,
  no_new_privs, and, when the grader runs as root, a uid of its own. The filesystem and the network stay
  as file permissions and the host leave them.
- "namespaces": the student runs as PID 1 of new PID, mount, network, IPC and UTS namespaces (plus a user
  namespace when the grader is not root), in a private filesystem view (an empty tmpfs root with the
  system and Python bound read-only, a fresh /tmp, a minimal /dev, its own masked /proc), with no
  capabilities, no_new_privs, the seccomp filter, and a uid of its own when the grader runs as root.
Memory and process counts are capped by cgroups where they are delegated (cgroup v1, as root), else by
the zygote's RSS watchdog and RLIMIT_NPROC.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

SAFE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    # One reduction order on every x86 CPU: ATen's AVX-512 kernels sum in 16 lanes where the default and AVX2
    # ones sum in 8, which moves a float32 mean by an ulp (README "References across CPUs"). Passed through
    # below when set, so a test can grade under each capability.
    "ATEN_CPU_CAPABILITY": "default",
}
# Kept because some CPUs need them for correct BLAS results, and CUDA needs to see its devices.
PASSED_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")
OPEN_FILES = 256
FILE_SIZE_BYTES = 8 * 1024 * 1024
PROCESSES = 64  # per submission, threads included (RLIMIT_NPROC, and the pids cgroup where delegated)
TMPFS_BYTES = 64 * 1024 * 1024  # the sandbox's writable /tmp (also charged to the memory cgroup)
# When the grader runs as root the student gets a uid of its own: SANDBOX_UID_BASE + the worker's pid, so
# that no other process shares it (RLIMIT_NPROC counts per uid, and fails a fork before it copies memory).
SANDBOX_UID_BASE = 2_000_000_000
SANDBOX_HOME = "/tmp/submission"  # the working directory inside the namespaces tier
TIERS = ("none", "process", "namespaces")  # weakest first

# Linux constants (include/uapi/linux/sched.h, mount.h, prctl.h).
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
# statvfs flags that the kernel locks on a bind mount: a read-only remount must repeat them.
LOCKED_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                (os.ST_RELATIME, MS_RELATIME)) if hasattr(os, "ST_NOSUID") else ()
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc: Any = None
PLAN: dict[str, Any] = {"tier": "process", "requested": "auto", "notes": []}


class IsolationError(OSError):
    """A step of building the sandbox failed; the job must not run at a weaker tier than promised."""


def scrubbed_environment(home: str) -> dict[str, str]:
    env = dict(SAFE_ENV, HOME=home, TMPDIR=home)
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    return env


# ------------------------------------------------------------------ syscalls through ctypes


def libc() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option: int, value: int) -> None:
    _check(libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(libc().unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = (lambda s: s.encode() if s is not None else None)
    result = libc().mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))
    _check(result, f"mount {source} on {target}")


def pivot_root(new_root: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise IsolationError(0, f"pivot_root: unknown syscall number on {platform.machine()}")
    os.chdir(new_root)
    _check(libc().syscall(number, b".", b"."), "pivot_root")
    _check(libc().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def drop_bounding_set() -> None:
    """No capability can ever come back, not even through exec (needs CAP_SETPCAP: call before dropping)."""
    for cap in range(64):
        if libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (capset, version 3)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc().capset(header, data), "capset")


# ------------------------------------------------------------------ what this machine offers


def _cgroup_v1_dir(controller: str) -> str | None:
    """This process's own cgroup v1 directory for `controller`, if we may create children in it."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            directory = os.path.join("/sys/fs/cgroup", controller) + path
            if os.path.isdir(directory) and os.access(directory, os.W_OK):
                return directory
    return None


def _make_cgroups() -> dict[str, str]:
    """One cgroup per controller for this zygote (jobs get sub-cgroups); empty where not delegated."""
    made = {}
    for controller, probe_file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        parent = _cgroup_v1_dir(controller)
        if parent is None:
            continue
        _remove_stale_cgroups(parent)
        directory = os.path.join(parent, f"grader-{os.getpid()}")
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.exists(os.path.join(directory, probe_file)):
                made[controller] = directory
            else:
                os.rmdir(directory)
        except OSError:
            continue
    return made


def _remove_stale_cgroups(parent: str) -> None:
    """Cgroups left by zygotes that were killed before they could clean up."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("grader-") and n[7:].isdigit()]
    except OSError:
        return
    for name in names:
        if not os.path.exists(f"/proc/{name[7:]}"):
            remove_cgroup(os.path.join(parent, name))


def remove_cgroup(directory: str) -> None:
    for sub in sorted((e.path for e in os.scandir(directory) if e.is_dir()), reverse=True) \
            if os.path.isdir(directory) else []:
        remove_cgroup(sub)
    try:
        os.rmdir(directory)
    except OSError:
        pass


def job_cgroups(job_id: str, limits: dict[str, Any] | None = None, prefix: str = "job-") -> dict[str, str]:
    """Create a job's cgroups (in the zygote, before forking), with its limits when they are known already
    (a spare child's cgroups get theirs from `limit_cgroups` when its job arrives)."""
    made = {}
    for controller, base in PLAN.get("cgroups", {}).items():
        directory = os.path.join(base, f"{prefix}{job_id}")
        try:
            os.mkdir(directory)
            made[controller] = directory
        except OSError:
            remove_cgroup(directory)
    return made if limits is None else limit_cgroups(made, limits)


def limit_cgroups(cgroups: dict[str, str], limits: dict[str, Any]) -> dict[str, str]:
    """Write a job's limits into its cgroups; what comes back are those that took them (any other is
    removed, and its limit falls back to the rlimits and the RSS watchdog)."""
    kept = {}
    for controller, directory in cgroups.items():
        try:
            if controller == "memory":
                limit = str(int(limits["memory_mib"]) * 1024 * 1024)
                _write(os.path.join(directory, "memory.limit_in_bytes"), limit)
                swap = os.path.join(directory, "memory.memsw.limit_in_bytes")
                if os.path.exists(swap):
                    _write(swap, limit)  # no swapping our way past the limit
            else:
                _write(os.path.join(directory, "pids.max"), str(int(limits.get("processes", PROCESSES))))
            kept[controller] = directory
        except OSError:
            remove_cgroup(directory)
    return kept


def cgroup_pids(cgroups: dict[str, str]) -> list[int]:
    for directory in cgroups.values():
        try:
            with open(os.path.join(directory, "cgroup.procs"), encoding="ascii") as handle:
                return [int(line) for line in handle if line.strip()]
        except OSError:
            continue
    return []


def cgroup_memory(cgroups: dict[str, str]) -> tuple[float, bool]:
    """(peak MiB, whether the kernel had to kill for memory) for a job's memory cgroup."""
    directory = cgroups.get("memory")
    if directory is None:
        return 0.0, False
    try:
        with open(os.path.join(directory, "memory.max_usage_in_bytes"), encoding="ascii") as handle:
            peak = int(handle.read()) / (1024 * 1024)
        with open(os.path.join(directory, "memory.oom_control"), encoding="ascii") as handle:
            fields = dict(line.split() for line in handle if line.strip())
        with open(os.path.join(directory, "memory.failcnt"), encoding="ascii") as handle:
            failcnt = int(handle.read())
    except (OSError, ValueError):
        return 0.0, False
    return peak, int(fields.get("oom_kill", "0")) > 0 or (failcnt > 0 and "oom_kill" not in fields)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def prepare(requested: str = "auto", cgroups: bool = True) -> dict[str, Any]:
    """Once per zygote, before any job: decide the tier by trying it, and set up cgroups.

    `cgroups=False` leaves them out even where delegated (tests of the fallbacks a non-root grader gets).
    """
    PLAN.clear()
    PLAN.update({"requested": requested, "root": hasattr(os, "geteuid") and os.geteuid() == 0,
                 "worker_pid": os.getpid(),
                 "bubblewrap": shutil.which("bwrap"), "notes": []})
    if not sys.platform.startswith("linux"):
        PLAN["tier"] = "none"
        PLAN["notes"].append(f"no sandbox on {platform.system()}: only rlimits, a fresh directory and a "
                             "scrubbed environment; do not grade untrusted work here")
        return dict(PLAN)
    PLAN["cgroups"] = _make_cgroups() if requested != "none" and cgroups else {}
    if cgroups and not PLAN["cgroups"] and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        PLAN["notes"].append("cgroup v2 is not used (only delegated v1 controllers are): memory is watched by "
                             "the RSS watchdog and processes capped by RLIMIT_NPROC")
    if requested in ("auto", "namespaces", "userns"):
        PLAN["userns"] = requested == "userns" or not PLAN["root"]
        PLAN["pid_ns_fd"] = None if PLAN["userns"] else _open_pid_ns()
        failure = _try_namespaces()
        if failure is not None and PLAN["pid_ns_fd"] is not None:
            os.close(PLAN["pid_ns_fd"])
            PLAN["pid_ns_fd"] = None
            failure = _try_namespaces()
        if failure is None:
            PLAN["tier"] = "namespaces"
        else:
            PLAN["notes"].append(f"namespaces unavailable: {failure}")
            if requested in ("auto", "namespaces") and PLAN["userns"] is False:
                PLAN["userns"] = True
                if _try_namespaces() is None:
                    PLAN["tier"] = "namespaces"
    if "tier" not in PLAN:
        PLAN["tier"] = "process" if requested != "none" else "none"
    if PLAN["tier"] != "namespaces":
        PLAN["userns"] = False
        if PLAN.get("pid_ns_fd") is not None:
            os.close(PLAN["pid_ns_fd"])
        PLAN["pid_ns_fd"] = None
    # Never leave a submission as uid 0, even without capabilities: kill(-1) would reach every root process.
    PLAN["drop_uid"] = PLAN["tier"] == "process" and PLAN["root"]
    hidden = [p for p in python_paths() if not _world_readable(p)]
    if PLAN["drop_uid"] and hidden:
        PLAN["notes"].append(f"Python lives where an unprivileged uid cannot read it ({hidden[0]}): at the "
                             "process tier, modules the worker has not imported yet cannot be imported")
    if PLAN["root"] and (PLAN["tier"] == "namespaces" and not PLAN["userns"] or PLAN["drop_uid"]):
        PLAN["student_uid"] = sandbox_uid()
    if PLAN["tier"] == "process" and not PLAN["drop_uid"]:
        PLAN["user_tasks"] = _tasks_of(os.getuid())
    return dict(PLAN)


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included, as RLIMIT_NPROC counts them) `uid` runs now."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle if b":" in line)
            if int(fields[b"Uid"].split()[1]) == uid:
                count += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return count


def _world_readable(path: str) -> bool:
    """Whether every directory down to `path` lets others in (what an unprivileged uid needs to import)."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        try:
            if not os.stat(current).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _try_namespaces() -> str | None:
    """Build the whole namespaces sandbox in a throw-away child; None when it worked, else why not."""
    scratch = tempfile.mkdtemp(prefix="grader-probe-")
    os.chmod(scratch, 0o755)
    report_read, report_write = os.pipe()
    try:
        pid = fork_job()
    except OSError as exc:
        os.close(report_read)
        os.close(report_write)
        shutil.rmtree(scratch, ignore_errors=True)
        return str(exc)
    if pid == 0:
        code = 1
        try:
            os.close(report_read)
            os.setsid()
            enter_namespaces(scratch, {"timeout": 5, "memory_mib": 512}, nproc=False, keep_fds=(report_write,))
            code = 0 if os.path.isdir(sys.base_prefix) and os.path.isdir(SANDBOX_HOME) else 3
        except BaseException as exc:  # noqa: BLE001 - report every failure, never escape the fork
            os.write(report_write, str(exc).encode()[:500])
        finally:
            os._exit(code)
    os.close(report_write)
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = None
    message = os.read(report_read, 600).decode("utf-8", "replace")
    os.close(report_read)
    shutil.rmtree(scratch, ignore_errors=True)
    if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    return message or f"the trial sandbox exited with status {status}"


# ------------------------------------------------------------------ in each child


def apply_rlimits(limits: dict[str, Any], processes: bool) -> None:
    cpu = int(limits["timeout"]) + 2
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES),
              (resource.RLIMIT_NOFILE, OPEN_FILES)]
    if processes and hasattr(resource, "RLIMIT_NPROC"):
        wanted.append((resource.RLIMIT_NPROC, int(limits.get("processes", PROCESSES))))
    for name, value in wanted:
        _soft, hard = resource.getrlimit(name)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (cap, cap))


def join_cgroups(cgroups: dict[str, str]) -> None:
    """Move this process into its job's cgroups. On cgroup v1 this waits for an RCU grace period (about
    10 ms) unless another move came just before: a spare child does it before its job arrives."""
    for directory in cgroups.values():
        _write(os.path.join(directory, "cgroup.procs"), str(os.getpid()))


def _bind_read_only(source: str, new_root: str) -> None:
    target = new_root + source
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(source), target)
        return
    if not os.path.isdir(source):
        return
    os.makedirs(target, exist_ok=True)
    mount(source, target, None, MS_BIND)
    locked = os.statvfs(source).f_flag
    extra = sum(ms for st, ms in LOCKED_FLAGS if locked & st)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | extra)


def python_paths() -> list[str]:
    """Where the running Python and its packages live, minus anything that would expose the course repo."""
    grader_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.update(p for p in sys.path if p and os.path.isdir(p))
    keep = []
    for path in sorted(os.path.realpath(p) for p in candidates):
        if path in ("/", grader_root) or grader_root.startswith(path + os.sep):
            continue  # binding it would show the course repository (solutions, hidden references)
        if any(path == k or path.startswith(k + os.sep) for k in keep):
            continue
        if any(path == s or path.startswith(s + os.sep) for s in SYSTEM_PATHS):
            continue
        keep.append(path)
    return keep


def _build_root(new_root: str) -> None:
    """An empty tmpfs with the system and Python read-only, a fresh /tmp, a minimal /dev and /proc."""
    mount("sandbox-root", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            _bind_read_only(path, new_root)
    # The fresh /tmp goes in before Python's own paths: a venv that lives under /tmp (a CI clone, say)
    # is then bound on top of it instead of being hidden by it.
    os.makedirs(new_root + "/tmp")
    mount("sandbox-tmp", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={TMPFS_BYTES},nr_inodes=4096,mode=1777")
    for path in python_paths():
        _bind_read_only(path, new_root)
    os.makedirs(new_root + "/dev")
    mount("sandbox-dev", new_root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        target = f"{new_root}/dev/{name}"
        open(target, "w").close()  # a mount point for the bind
        mount(f"/dev/{name}", target, None, MS_BIND)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{new_root}/dev/{name}")
    _bind_gpus(new_root)
    os.makedirs(new_root + "/dev/shm")
    mount("sandbox-shm", new_root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    os.makedirs(new_root + "/proc")
    mount("proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mask_proc(new_root + "/proc")


# Kernel knobs and leaks in /proc that file permissions alone guard: a submission whose uid is root's (a
# user namespace entered by a root grader) could otherwise write them. /proc/sys becomes read-only, and
# these files show /dev/null instead, as container runtimes do.
PROC_MASKED = ("sysrq-trigger", "kcore", "kmsg", "keys", "timer_list", "sched_debug", "latency_stats",
               "config.gz", "kallsyms", "modules", "vmallocinfo")


def _mask_proc(proc: str) -> None:
    mount(proc + "/sys", proc + "/sys", None, MS_BIND | MS_REC)
    mount(None, proc + "/sys", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_MASKED:
        if os.path.isfile(f"{proc}/{name}"):
            mount("/dev/null", f"{proc}/{name}", None, MS_BIND)


def _bind_gpus(new_root: str) -> None:
    """NVIDIA device nodes (and /sys, read-only, which the driver library reads) where the machine has them.

    Without them `--device cuda` could not work inside the sandbox. The nodes are the driver's own (usually
    mode 0666); nothing else of /dev is shown.
    """
    try:
        names = sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
    except OSError:
        return
    if not names:
        return
    for name in names:
        source, target = f"/dev/{name}", f"{new_root}/dev/{name}"
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
            mount(source, target, None, MS_BIND | MS_REC)
        else:
            open(target, "w").close()  # a mount point for the bind
            mount(source, target, None, MS_BIND)
    _bind_read_only("/sys", new_root)


# Seccomp (x86_64 only): refuse the system calls a submission never needs and that widen the kernel's attack
# surface or undo the sandbox: nested namespaces, mounts, tracing other processes, loading kernel code, BPF,
# keyrings, io_uring. clone3 answers ENOSYS, so that the C library falls back to clone(), whose flags we
# can read. Numbers from arch/x86/entry/syscalls/syscall_64.tbl.
SECCOMP_DENY_X86_64 = {
    "ptrace": 101, "syslog": 103, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "pivot_root": 155, "chroot": 161, "init_module": 175, "delete_module": 176,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}
SYS_CLONE_X86_64, SYS_CLONE3_X86_64 = 56, 435
SYS_SOCKET_X86_64, SYS_SOCKETPAIR_X86_64 = 41, 53
SOCKET_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET \
    | 0x02000000 | 0x00000080  # CLONE_NEWCGROUP, CLONE_NEWTIME
AUDIT_ARCH_X86_64 = 0xC000003E
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program() -> list[tuple[int, int, int, int]]:
    """The BPF filter as (code, jt, jf, k) tuples."""
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    errno, allow = 0x00050000, 0x7FFF0000
    eperm, enosys = errno | 1, errno | 38
    program = [(load, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH_X86_64), (ret, 0, 0, eperm),  # other ABIs: no
               (load, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]  # x32 numbers: no
    for number in sorted(SECCOMP_DENY_X86_64.values()):
        program += [(jeq, 0, 1, number), (ret, 0, 0, eperm)]
    program += [(jeq, 0, 1, SYS_CLONE3_X86_64), (ret, 0, 0, enosys)]
    # Each block below inspects an argument, so it ends the program itself (allow or refuse).
    program += [(jeq, 0, 4, SYS_CLONE_X86_64), (load, 0, 0, 16), (jset, 0, 1, NAMESPACE_FLAGS),
                (ret, 0, 0, eperm), (ret, 0, 0, allow)]
    for number in (SYS_SOCKET_X86_64, SYS_SOCKETPAIR_X86_64):
        # Only the socket families a network namespace contains: AF_VSOCK, for one, reaches a VM's host.
        program += [(jeq, 0, 7, number), (load, 0, 0, 16)]
        program += [(jeq, 4 - i, 0, family) for i, family in enumerate(SOCKET_FAMILIES)]
        program += [(ret, 0, 0, errno | 97), (ret, 0, 0, allow)]  # EAFNOSUPPORT
    program.append((ret, 0, 0, allow))
    return program


def install_seccomp() -> bool:
    """Load the filter (needs no_new_privs first); False where it does not apply (not x86_64)."""
    if platform.machine() != "x86_64":
        return False
    program = seccomp_program()
    filters = (_SockFilter * len(program))(*[_SockFilter(*instruction) for instruction in program])
    fprog = _SockFprog(len(program), filters)
    _check(libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
    return True


def fork_job() -> int:
    """os.fork() for a job. As root at the namespaces tier the child is born PID 1 of a new PID namespace.

    The worker unshares the PID namespace for its next child, forks, and steps back into its own PID
    namespace for the following job (setns). This saves the intermediate process that a child must
    otherwise fork to get a PID 1 of its own: one fork of a torch-sized process per submission.
    """
    own = PLAN.get("pid_ns_fd")
    if own is None:
        return os.fork()
    unshare(CLONE_NEWPID)
    try:
        pid = os.fork()
    except BaseException:
        _check(libc().setns(own, CLONE_NEWPID), "setns back to our PID namespace")
        raise
    if pid != 0:
        _check(libc().setns(own, CLONE_NEWPID), "setns back to our PID namespace")
    return pid


def job_has_intermediate() -> bool:
    """Whether a job's child forks an intermediate (which waits in the tree, and is no part of the student)."""
    return PLAN.get("tier") == "namespaces" and PLAN.get("pid_ns_fd") is None


def _open_pid_ns() -> int | None:
    """Where fork_job() can make PID namespaces itself: as root, without a user namespace."""
    try:
        return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def enter_namespaces(host_dir: str, limits: dict[str, Any], nproc: bool, keep_fds: tuple[int, ...] = ()) -> None:
    """Split into an intermediate (waits, relays the exit status) and the student's PID 1, which returns.

    `host_dir` is an empty directory that becomes the new root (a tmpfs over it, seen only inside).
    """
    userns = bool(PLAN.get("userns"))
    uid, gid = os.getuid(), os.getgid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote dies: so do we
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if os.getpid() == 1:  # fork_job() already made us PID 1 of a new PID namespace: no intermediate
        unshare(flags)
    else:
        unshare(flags | CLONE_NEWPID | (CLONE_NEWUSER if userns else 0))
        if userns:
            # Only our own uid can be mapped without help from outside: inside root = us, without powers later.
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        pid = os.fork()
        if pid != 0:
            _relay(pid, keep_fds)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the intermediate dies: so does PID 1, and its namespace
    if os.getsid(0) != os.getpid():
        os.setsid()  # kill(0, ...) from the student reaches its own group only
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    _build_root(host_dir)
    pivot_root(host_dir)
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    libc().sethostname(b"sandbox", 7)
    os.makedirs(SANDBOX_HOME, mode=0o700)
    drop_bounding_set()
    if not userns:
        os.chown(SANDBOX_HOME, sandbox_uid(), sandbox_uid())
        _become(sandbox_uid())
    drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a uid change clears it
    apply_rlimits(limits, processes=nproc)
    os.chdir(SANDBOX_HOME)


def _relay(pid: int, keep_fds: tuple[int, ...]) -> None:
    """The intermediate: hold nothing open, wait for PID 1, and end the same way it did."""
    os.closerange(0, min(keep_fds, default=1 << 16))
    for fd in keep_fds:
        os.closerange(fd + 1, 1 << 16)
    status = 0
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(70)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def sandbox_uid() -> int:
    return SANDBOX_UID_BASE + int(PLAN.get("worker_pid", os.getpid()))


def _become(uid: int) -> None:
    """From root to `uid` (same gid): every capability goes with it."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_DUMPABLE, 1)  # the uid change made /proc/self root-owned; the student's own is harmless


def _drop_uid() -> bool:
    """Process tier as root: a uid of its own, so the student cannot signal the grader or read root's files."""
    if not PLAN.get("drop_uid"):
        return False
    _become(sandbox_uid())
    return True


def enter(job: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Isolate this (forked, single-threaded) child. Returns what was achieved, for the report."""
    limits = job["limits"]
    tier = PLAN.get("tier", "process")
    cgroups = job.get("cgroups") or {}
    if not job.get("joined"):
        join_cgroups(cgroups)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails instead of killing
    defences = ["rlimits", "scrubbed-env", "process-tree-kill", "output-cap", "channel-validation"]
    if tier == "namespaces":
        enter_namespaces(workdir, limits, nproc=True)
        home = SANDBOX_HOME
        defences += ["pid-namespace", "mount-namespace", "private-filesystem", "network-namespace",
                     "ipc-namespace", "no-capabilities", "no-new-privs"]
        defences.append("user-namespace" if PLAN.get("userns") else "unprivileged-uid")
    else:
        os.chdir(workdir)
        home = workdir
        if tier == "process":
            if _drop_uid():
                defences.append("unprivileged-uid")
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            defences.append("no-new-privs")
        if tier == "process" and not PLAN.get("drop_uid"):
            # Our uid's processes count too: allow the submission PROCESSES more than the user already runs.
            limits = {**limits, "processes": PLAN.get("user_tasks", 0) + int(limits.get("processes", PROCESSES))}
        apply_rlimits(limits, processes=tier == "process")
    if tier != "none" and PLAN.get("seccomp", True):
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if install_seccomp():
            defences.append("seccomp")
    os.environ.clear()
    os.environ.update(scrubbed_environment(home))
    if tier == "namespaces":
        os.environ["TMPDIR"] = "/tmp"
    defences += [f"{c}-cgroup" for c in sorted(cgroups)]
    return {"tier": tier, "uid": str(os.getuid()), "defences": defences,
            "memory": "cgroup" if "memory" in cgroups else "rss-watchdog",
            "processes": "rlimit-nproc+pids-cgroup" if "pids" in cgroups else "rlimit-nproc"}
