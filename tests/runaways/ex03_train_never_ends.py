"""Runaway (ex03): train's loop never ends (a `while` whose counter is never advanced); forward and loss are
right. Expected: the train checks cost only themselves, forward's and loss's checks still pass."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    epoch = 0
    while epoch < n_iters:
        value = loss(y, forward(w, x))
        value.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
    return history
