"""Bug: appends (w, l.item()) with the tensor w itself; every entry ends up showing the final w."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w, l.item()))
    return history
