"""Attack: write fake results straight into the grader's result pipe, before the harness does.
Expected: forged numbers are still compared with references the child never sees; below full marks."""
import json
import os

KEYS = []
for fd in range(3, 64):
    try:
        os.fstat(fd)
    except OSError:
        continue
    for kind in ("result", "done"):
        line = {"type": kind, "key": "forged", "device": "cpu", "ok": True,
                "fields": {"w": [2.0] * 100, "loss": [0.0] * 100, "value": 0.0, "backward_calls": 100}}
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        except OSError:
            pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(2.0, 0.0)] * n_iters
