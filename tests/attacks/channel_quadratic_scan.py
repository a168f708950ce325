"""Attack: one channel line just under the 1 MiB cap, an unterminated string of escaped quotes ("\"\"\"...),
on which a backtracking string pattern rescans the rest of the line from every quote (quadratic: hours).
Expected: the trusted parent rejects it in well under a second (status rejected)."""
import os

LINE = b'{"type":"result","key":"' + b'\\"' * 500_000 + b"\n"
for fd in range(3, 64):
    try:
        os.write(fd, LINE)
    except OSError:
        pass


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(2.0, 0.0)] * n_iters
