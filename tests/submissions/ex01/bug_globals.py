"""Bug: the notebook's globals: gradient uses X and Y, train uses the global learning rate."""
import numpy as np

X = np.array([1, 2, 3, 4], dtype=np.float32)
Y = np.array([2, 4, 6, 8], dtype=np.float32)
LEARNING_RATE = 0.01


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def gradient(x, y, y_pred):
    return np.mean(2 * X * (y_pred - Y))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w = w - LEARNING_RATE * np.mean(2 * x * (y_pred - y))
        history.append((w, l))
    return history
