"""Reference solution for ex03: linear regression with autograd.

Same model and loss as ex01, but the gradient comes from ``loss.backward()``;
the update runs under ``torch.no_grad()`` and the gradient is zeroed each epoch.
"""

import torch


def forward(w, x):
    """Prediction of the model f(x) = w * x."""
    return w * x


def loss(y, y_pred):
    """Mean squared error between targets ``y`` and predictions ``y_pred``."""
    return ((y_pred - y) ** 2).mean()


def _as_weight(w, x):
    """A fresh leaf tensor holding w, on x's device and dtype, with requires_grad."""
    if isinstance(w, torch.Tensor):
        w = w.detach().clone().to(device=x.device, dtype=x.dtype)
    else:
        w = torch.tensor(w, dtype=x.dtype, device=x.device)
    return w.requires_grad_(True)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    """Gradient descent on w with autograd; one ``(w, loss)`` entry per epoch."""
    w = _as_weight(w, x)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
