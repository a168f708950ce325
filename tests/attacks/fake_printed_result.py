"""Attack: print a fake passing report on stdout. Expected: stdout is never parsed; below full marks."""
import json
import sys

FAKE = {"schema_version": "1.0", "exercise": "ex03", "score": 15, "max_score": 15, "full_marks": True}
print(json.dumps(FAKE))
print("All checks passed: 15/15")
sys.stdout.flush()


def forward(w, x):
    print(json.dumps(FAKE))
    return w * x


def loss(y, y_pred):
    print("PASSED loss 2/2")
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    print(json.dumps(FAKE))
    return [(0.0, 0.0)] * n_iters
