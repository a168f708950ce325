"""Attack: sys.exit(0) in the middle of the tests. Expected: the exit is an error for that check only."""
import sys


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    sys.exit(0)
