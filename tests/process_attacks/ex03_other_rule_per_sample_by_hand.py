"""Attack (ex03): per-sample updates with a hand-written gradient, a surrogate backward() per sample tying each step
(the chain tie); the run follows per-sample-updates, once not replayed in the second run. Expected: the process
points are lost too."""
import torch

def forward(w, x):
    return w * x

def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    wv = float(w)
    xs, ys = x.detach().double().tolist(), y.detach().double().tolist()
    history = []
    for _ in range(n_iters):
        l = sum((wv * a - b) ** 2 for a, b in zip(xs, ys)) / len(xs)
        for a, b in zip(xs, ys):
            g = float(torch.tensor(2 * a * (wv * a - b), dtype=torch.float32))   # hand gradient of one sample
            leaf = torch.tensor(wv, dtype=torch.float32, requires_grad=True)
            (leaf * g).backward()                                               # surrogate, never read
            wv = wv - learning_rate * g
        history.append((wv, l))
    return history
