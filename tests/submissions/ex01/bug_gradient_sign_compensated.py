"""Bug: gradient() returns the gradient with its sign flipped, and train adds it (w + lr * dw), so the
student's own run is right; with the grader's own gradient() swapped in, train climbs."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return np.mean((y_pred - y) ** 2)


def gradient(x, y, y_pred):
    return np.mean(2 * x * (y - y_pred))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w = w + learning_rate * gradient(x, y, y_pred)
        history.append((float(w), float(l)))
    return history
