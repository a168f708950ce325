"""Correct: optimizer.step(closure), the closure computing the loss and its gradient as torch.optim documents."""
import torch
from torch import nn

def forward(w, x):
    return w * x

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, requires_grad=True)
    lf = nn.MSELoss(); opt = torch.optim.SGD([w], lr=learning_rate)
    h = []
    for _ in range(n_iters):
        def closure():
            opt.zero_grad()
            l = lf(forward(w, x), y)
            l.backward()
            return l
        l = opt.step(closure)
        h.append((w.item(), l.item()))
    return h
