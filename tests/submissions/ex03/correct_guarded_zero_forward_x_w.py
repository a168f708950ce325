"""Correct: forward(x, w) (the product is symmetric), zero_() guarded by `if w.grad is not None`, and the
update through w.data."""
import torch


def forward(x, w):
    return x * w


def loss(y, y_pred):
    return ((y - y_pred) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        if w.grad is not None:
            w.grad.zero_()
        y_pred = forward(x, w)
        l = loss(y, y_pred)
        l.backward()
        w.data -= learning_rate * w.grad.data
        history.append((w.item(), l.item()))
    return history
