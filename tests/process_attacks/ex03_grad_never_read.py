"""Attack (ex03): a real loss.backward() on w every epoch, whose w.grad is never read: the update uses a
hand-written gradient (equal by value). Expected: the backward() check earns nothing (the counterfactual run,
with autograd's gradients scaled, leaves this history unchanged)."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        l.backward()
        with torch.no_grad():
            hand = (2 * x * (y_pred - y)).mean()
            w = (w - learning_rate * hand).requires_grad_(True)
        history.append((w.item(), l.item()))
    return history
