"""The namespaces tier's filesystem view: an empty tmpfs root with the system and Python bound read-only.

Plus a fresh /tmp, a minimal /dev (with the GPUs where there are any) and the job's own masked /proc.
"""

from __future__ import annotations

import os
import sys

from grader.sandbox.syscalls import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    mount,
)

TMPFS_BYTES = 64 * 1024 * 1024  # the sandbox's writable /tmp (also charged to the memory cgroup)
SANDBOX_HOME = "/tmp/submission"  # the working directory inside the namespaces tier
# statvfs flags that the kernel locks on a bind mount: a read-only remount must repeat them.
LOCKED_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                (os.ST_RELATIME, MS_RELATIME)) if hasattr(os, "ST_NOSUID") else ()
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")


def bind_read_only(source: str, new_root: str) -> None:
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


def build_root(new_root: str) -> None:
    """An empty tmpfs with the system and Python read-only, a fresh /tmp, a minimal /dev and /proc."""
    mount("sandbox-root", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            bind_read_only(path, new_root)
    # The fresh /tmp goes in before Python's own paths: a venv that lives under /tmp (a CI clone, say)
    # is then bound on top of it instead of being hidden by it.
    os.makedirs(new_root + "/tmp")
    mount("sandbox-tmp", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={TMPFS_BYTES},nr_inodes=4096,mode=1777")
    for path in python_paths():
        bind_read_only(path, new_root)
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
    bind_read_only("/sys", new_root)


def world_readable(path: str) -> bool:
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
