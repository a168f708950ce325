"""Correct: zeroes the gradient at the start of each epoch, before backward (notebook style otherwise)."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        if w.grad is not None:
            w.grad.zero_()
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        l.backward()
        with torch.no_grad():
            w.sub_(learning_rate * w.grad)
        history.append((float(w), float(l)))
    return history
