"""Correct: the true MSE gradient, mean(2*x*(y_pred - y)), with NumPy scalars in the history."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return np.mean(np.square(y_pred - y))


def gradient(x, y, y_pred):
    return (2 * x * (y_pred - y)).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    w = np.float32(w)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w -= learning_rate * gradient(x, y, y_pred)
        history.append([w, l])
    return history
