"""Bug: the notebooks' hand-written gradient (torch.dot(...).mean(), N times too large) instead of autograd."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def gradient(x, y, y_pred):
    return torch.dot(2 * x, y_pred - y).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w = w - learning_rate * gradient(x, y, y_pred)
        history.append((float(w), float(l)))
    return history
