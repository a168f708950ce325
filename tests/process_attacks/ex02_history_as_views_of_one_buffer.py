"""Attack (ex02): finite differences and a surrogate backward(), the history returned as views of rows of one buffer,
which the probe once took for one live tensor, so the second run was not compared. Expected: only the process
points are lost."""
import torch

def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    wv = float(w)
    buf = torch.zeros(n_iters, 3, dtype=torch.float64)
    h = 1e-3
    for i in range(n_iters):
        with torch.no_grad():
            l = float(loss_fn(torch.tensor(wv, dtype=torch.float64)))
            g = float((loss_fn(torch.tensor(wv + h, dtype=torch.float64))
                       - loss_fn(torch.tensor(wv - h, dtype=torch.float64))) / (2 * h))
        g = float(torch.tensor(g, dtype=torch.float32))
        leaf = torch.tensor(wv, dtype=torch.float32, requires_grad=True)
        (leaf * g).backward()                 # surrogate: leaf.grad == g, never read
        wv = wv - learning_rate * g
        buf[i, 0], buf[i, 1], buf[i, 2] = wv, l, g
    return [(buf[i, 0], buf[i, 1], buf[i, 2]) for i in range(n_iters)]
