"""Bug: the gradient adds the products up with np.sum and never divides by N (no np.dot anywhere)."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return np.mean((y_pred - y) ** 2)


def gradient(x, y, y_pred):
    return np.sum(2 * x * (y_pred - y))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w -= learning_rate * gradient(x, y, y_pred)
        history.append((w, l))
    return history
