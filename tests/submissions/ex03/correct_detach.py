"""Correct: a fresh leaf each epoch, `(w - lr*w.grad).detach().requires_grad_()`, tensors in the history."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.full((), w, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        w = (w - learning_rate * w.grad).detach().requires_grad_()
        history.append((w.detach(), l.detach()))
    return history
