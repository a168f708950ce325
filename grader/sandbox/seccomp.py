"""The seccomp filter every sandboxed child loads (x86_64): system calls a submission never needs are refused."""

from __future__ import annotations

import ctypes
import platform

from grader.sandbox.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    check,
    libc,
)

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
    check(libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
    return True
