"""Attack (ex04): a history that never trains (the cataloged "frozen" mistake) beside real-looking steps.
Expected: no process credit beside a history that shows no training."""
import torch
from torch import nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        optimizer.zero_grad()
        optimizer.step()  # .grad is None here: w never moves
        l = loss(forward(w, x), y)
        l.backward()
        optimizer.zero_grad()
        history.append((w.item(), l.item()))
    return history
