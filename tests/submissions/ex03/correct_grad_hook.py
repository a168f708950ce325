"""Correct: the gradient caught by a hook on w during loss.backward() (w.register_hook), and the update made
with what the hook saw: the gradient is autograd's all the same."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    seen = []
    w.register_hook(lambda grad: seen.append(grad.detach().clone()))
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        l.backward()
        with torch.no_grad():
            w -= learning_rate * seen.pop()
        w.grad = None
        history.append((w.item(), l.item()))
    return history
