"""Attack: a channel line whose "type" is a list (or an object), not a string, written into the result pipe.
Expected: the channel is rejected (status rejected), never a TypeError ("unhashable type") in the grader."""
import json
import os

for fd in range(3, 64):
    for kind in (["result"], {"result": 1}):
        try:
            os.write(fd, (json.dumps({"type": kind, "key": "forged", "device": "cpu"}) + "\n").encode())
        except OSError:
            pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(2.0, 0.0)] * n_iters
