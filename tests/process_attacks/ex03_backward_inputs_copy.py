"""Attack (ex03): backward() on a dummy tensor with `inputs=[copy]`, copy holding w's value (the graph from
the dummy never reaches it), beside a hand-written gradient. Expected: the backward() check earns nothing."""
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
        copy = w.clone().requires_grad_(True)
        dummy = torch.tensor(1.0, requires_grad=True)
        (dummy * 2).backward(inputs=[copy])
        w = w - learning_rate * (2 * x * (y_pred - y)).mean()
        history.append((w.item(), l.item()))
    return history
