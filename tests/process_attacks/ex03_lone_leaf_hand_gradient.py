"""Attack (ex03): the gradient written by hand, and every epoch a lone leaf that holds w's value, with
backward() called on it (its gradient, 1, is never the update's). Expected: the training checks pass, the
backward() check earns nothing."""
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
        lone = torch.tensor(w.item(), requires_grad=True)  # holds w's value, so a value match finds "w"
        lone.backward()
        w = w - learning_rate * (2 * x * (y_pred - y)).mean()
        history.append((w.item(), l.item()))
    return history
