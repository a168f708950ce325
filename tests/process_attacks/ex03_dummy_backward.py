"""Attack (ex03): the gradient by hand, as in ex01, and backward() on an unrelated dummy tensor every epoch.
Expected: the training checks pass (the numbers are right), the backward() check earns nothing."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        grad = (2 * x * (y_pred - y)).mean()  # by hand: no autograd on w
        dummy = torch.tensor(1.0, requires_grad=True)
        (dummy * 2).backward()  # counted, but its gradient reaches nothing the history records
        w = w - learning_rate * grad
        history.append((w.item(), l.item()))
    return history
