"""Attack (ex04): the update by hand, and step() on a dummy optimizer that holds an unrelated tensor.
Expected: the training checks pass, the optimizer checks earn nothing."""
import torch
from torch import nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        l = loss(forward(w, x), y)
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        dummy.step()  # counted, but this optimizer never holds w
        history.append((w.item(), l.item()))
    return history
