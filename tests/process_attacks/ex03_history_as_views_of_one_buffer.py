"""Attack (ex03): a hand-written gradient and a surrogate backward(), the history returned as views of rows of one
buffer (once read as one live tensor: no second run compared). Expected: only the process points are lost."""
import torch

def forward(w, x):
    return w * x

def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    wv = float(w)
    xs, ys = x.detach().double(), y.detach().double()
    buf = torch.zeros(n_iters, 2, dtype=torch.float64)
    for i in range(n_iters):
        yp = wv * xs
        l = float(((yp - ys) ** 2).mean())
        g = float((2 * xs * (yp - ys)).mean())
        leaf = torch.tensor(wv, dtype=x.dtype, requires_grad=True)
        (leaf * g).backward()
        wv = wv - learning_rate * g
        buf[i, 0], buf[i, 1] = wv, l
    return [(buf[i, 0], buf[i, 1]) for i in range(n_iters)]
