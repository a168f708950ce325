"""Attack (ex03): a surrogate (copy * hand_grad).backward(), so that autograd puts exactly the hand-written
gradient on a leaf holding w's value, and the update uses the hand-written one. Expected: the backward() check
earns nothing (in the counterfactual run the update does not follow autograd's scaled gradient)."""
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
        hand = (2 * x * (y_pred - y)).mean()
        copy = w.clone().requires_grad_(True)
        (copy * hand).backward()
        w = w - learning_rate * hand
        history.append((w.item(), l.item()))
    return history
