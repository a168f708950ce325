"""Attack: climb out: a nested user namespace (to get capabilities back), mount, chroot, ptrace, setns.
Expected: every one of these system calls is refused."""
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
attempts = {
    "unshare(user)": lambda: libc.unshare(CLONE_NEWUSER),
    "unshare(mount)": lambda: libc.unshare(CLONE_NEWNS),
    "mount tmpfs": lambda: libc.mount(b"x", b"/tmp", b"tmpfs", 0, None),
    "chroot": lambda: libc.chroot(b"/tmp"),
    "ptrace(attach 1)": lambda: libc.ptrace(16, 1, None, None),
    "setns": lambda: libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0),
}
for name, attempt in attempts.items():
    try:
        if attempt() == 0:
            print("ESCAPED", name)
    except OSError:
        pass
if os.fork() == 0:  # a child that tries the same (clone with namespace flags)
    os._exit(0 if libc.unshare(CLONE_NEWUSER) != 0 else 9)
_, status = os.wait()
if os.WEXITSTATUS(status) == 9:
    print("ESCAPED child unshare")


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
