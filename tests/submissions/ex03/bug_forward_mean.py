"""Bug: forward returns the mean prediction (a scalar) instead of one per sample: the loss and gradient of
the student's own run are wrong, though train itself is right (the train checks swap the grader's forward in)."""
import torch


def forward(w, x):
    return (w * x).mean()


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
