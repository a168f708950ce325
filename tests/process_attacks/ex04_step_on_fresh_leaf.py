"""Attack (ex04): the update by hand, then an SGD step on a fresh leaf that already holds the new w (it has no
gradient, so the step leaves it where it is). Expected: the training checks pass, the optimizer checks earn
nothing."""
import torch
from torch import nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    history = []
    for _ in range(n_iters):
        l = loss(forward(w, x), y)
        l.backward()
        with torch.no_grad():
            new_w = (w - learning_rate * w.grad).item()
        fresh = torch.tensor(new_w, requires_grad=True)
        torch.optim.SGD([fresh], lr=learning_rate).step()  # holds "w" after the step, by value
        w = torch.tensor(new_w, dtype=x.dtype, device=x.device, requires_grad=True)
        history.append((w.item(), l.item()))
    return history
