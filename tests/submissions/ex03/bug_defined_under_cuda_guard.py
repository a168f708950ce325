"""Bug (no code): forward and loss are defined only under `if torch.cuda.is_available():`, so on a machine
without a GPU they do not exist. The message must say where they are, not that they are missing."""
import torch

if torch.cuda.is_available():
    device = torch.device("cuda")

    def forward(w, x):
        return w * x

    def loss(y, y_pred):
        return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for _ in range(n_iters):
        l = (((w * x) - y) ** 2).mean()
        l.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), l.item()))
    return history
