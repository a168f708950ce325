"""Bug: the loss sums the squared errors (in loss() and inline in train), so autograd's gradient is N times too large."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).sum()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = ((w * x - y) ** 2).sum()
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
