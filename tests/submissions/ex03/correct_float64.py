"""Correct: trains in float64 and returns Python floats."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    x, y = x.double(), y.double()
    w = torch.tensor(float(w), dtype=torch.float64, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
