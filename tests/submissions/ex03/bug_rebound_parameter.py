"""Bug: `w = w - learning_rate * w.grad` replaces the leaf w by a computed tensor: the next w.grad is None."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        l.backward()
        w = w - learning_rate * w.grad
        history.append((w.item(), l.item()))
    return history
