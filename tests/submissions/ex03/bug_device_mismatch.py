"""Bug: w is a 1-element tensor created on the CPU, so w * x fails when x is on the GPU."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor([w], dtype=torch.float32, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
