"""Attack: reach the kernel through /proc: open /proc/sysrq-trigger and kernel sysctls for writing (nothing
is ever written), read kernel memory and logs. Expected: /proc/sys is read-only, the rest shows /dev/null."""
import os
import stat

NULL = os.stat("/dev/null").st_rdev
for path in ("/proc/sysrq-trigger", "/proc/sys/kernel/panic", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/core_pattern"):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        continue
    info = os.fstat(fd)
    os.close(fd)
    if not (stat.S_ISCHR(info.st_mode) and info.st_rdev == NULL):
        print("ESCAPED writable", path)
for path in ("/proc/kcore", "/proc/kmsg"):
    try:
        with open(path, "rb") as handle:
            if handle.read(64):
                print("LEAK", path)
    except OSError:
        pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
