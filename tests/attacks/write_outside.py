"""Attack: write files outside the sandbox (a world-writable directory, /tmp, the repository, home).
Expected: none of them appears on the host."""
import os

TARGETS = ["@@OUTSIDE@@/pwned", "/tmp/@@MARKER@@", "@@REPO@@/@@MARKER@@", os.path.expanduser("~/@@MARKER@@"),
           "/dev/shm/@@MARKER@@", "/var/tmp/@@MARKER@@"]
for path in TARGETS:
    try:
        with open(path, "w") as handle:
            handle.write("pwned")
    except OSError:
        pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
