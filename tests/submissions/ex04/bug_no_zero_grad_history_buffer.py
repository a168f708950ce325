"""Bug: no zero_grad(); the history is kept in rows of one preallocated tensor (honest, not aliased)."""
import torch
from torch import nn

def forward(w, x):
    return w * x

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, requires_grad=True)
    lf = nn.MSELoss(); opt = torch.optim.SGD([w], lr=learning_rate)
    hist = torch.zeros(n_iters, 2)
    for i in range(n_iters):
        l = lf(forward(w, x), y)
        l.backward()
        opt.step()
        hist[i, 0] = w.item(); hist[i, 1] = l.item()
    return list(zip(hist[:, 0], hist[:, 1]))
