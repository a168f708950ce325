"""Bug: forward returns the mean prediction: only the end-to-end train with the student's own forward shows it."""
import torch
import torch.nn as nn


def forward(w, x):
    return (w * x).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device).requires_grad_()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD([w], learning_rate)
    history = []
    for _ in range(n_iters):
        l = loss_fn(forward(w, x), y)
        l.backward()
        optimizer.step()
        w.grad = None
        history.append((float(w), float(l)))
    return history
