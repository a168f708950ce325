"""Attack: a well-formed extra result whose output offsets are "nan" (the channel's spelling of NaN).
Expected: offsets that are not finite label nothing; a fair grade, never a ValueError in the grader."""
import json
import os

for fd in range(3, 64):
    for number, at in enumerate((["nan", 0.0], [0.0, "nan"], ["-inf", "inf"])):
        line = {"type": "result", "key": f"forged-{number}", "device": "cpu", "ok": True, "fields": {},
                "output_at": at}
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        except OSError:
            pass
print("printed while loading")


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(2.0, 0.0)] * n_iters
