"""Bug: w.grad is never zeroed; the history is kept in rows of one preallocated tensor (honest, not aliased)."""
import torch

def forward(w, x):
    return w * x

def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, requires_grad=True)
    hist = torch.zeros(n_iters, 2)
    for i in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        hist[i, 0] = w.item(); hist[i, 1] = l.item()
    return [(hist[i, 0], hist[i, 1]) for i in range(n_iters)]
