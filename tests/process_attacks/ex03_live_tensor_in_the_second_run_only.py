"""Attack (ex03): a hand-written gradient; in the short second run (n_iters <= 6) the history is one live tensor, so
that run shows nothing. Expected: only the process points are lost."""
import torch

def forward(w, x):
    return w * x

def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    wv = float(w)
    xs, ys = x.detach().double(), y.detach().double()
    history = []
    for _ in range(n_iters):
        yp = wv * xs
        l = float(((yp - ys) ** 2).mean())
        g = float((2 * xs * (yp - ys)).mean())          # hand gradient
        leaf = torch.tensor(wv, dtype=x.dtype, requires_grad=True)
        (leaf * g).backward()                            # surrogate: leaf.grad == g, never read
        wv = wv - learning_rate * g
        history.append((wv, l))
    if n_iters <= 6:                                     # the grader's short rerun
        wt, lt = torch.tensor([wv]), torch.tensor([l])
        return [(wt, lt)] * n_iters
    return history
