"""Attack: read the grader's environment (a canary variable) from os.environ and /proc/*/environ.
Expected: the sandbox's environment is scrubbed and other processes' environments are out of reach."""
import os

NAME = "@@CANARY_NAME@@"
seen = [os.environ.get(NAME, "")]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                seen.append(handle.read().decode("utf-8", "replace"))
        except OSError:
            pass
for text in seen:
    if NAME in text or "@@CANARY_VALUE@@" in text:
        print("LEAK", text[:300])


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
