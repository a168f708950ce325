"""Attack: overwrite another student's submission and report, and the gradebook.
Expected: they are not visible from the sandbox and stay intact."""
import os

TARGETS = ["@@NEIGHBOUR_SUBMISSION@@", "@@NEIGHBOUR_REPORT@@", "@@OUT@@/gradebook.csv"]
for path in TARGETS:
    for action in ("write", "unlink", "chmod"):
        try:
            if action == "write":
                with open(path, "w") as handle:
                    handle.write("def train(*a, **k):\n    raise SystemExit('sabotaged')\n")
            elif action == "unlink":
                os.unlink(path)
            else:
                os.chmod(path, 0)
            print("DID", action, path)
        except OSError:
            pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
