"""Correct: the MSE written as the sum of the squared errors over N, and backward() on that sum."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        (((forward(w, x) - y) ** 2).sum() / len(x)).backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
            w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
