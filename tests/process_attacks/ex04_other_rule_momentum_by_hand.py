"""Attack (ex04): heavy-ball momentum written by hand inside an lr=0 SGD's pre-hook; the run follows wrong-optimizer,
once not replayed in the second run. Expected: the process points are lost too."""
import torch
from torch import nn

def forward(w, x):
    return w * x

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    opt = torch.optim.SGD([w], lr=0.0)
    buf = [None]
    def by_hand(optimizer, args, kwargs):
        with torch.no_grad():
            g = w.grad.clone()
            buf[0] = g if buf[0] is None else 0.9 * buf[0] + g
            w.sub_(learning_rate * buf[0])
    opt.register_step_pre_hook(by_hand)
    h = []
    for i in range(n_iters):
        l = loss(forward(w, x), y)
        l.backward()
        opt.step()
        opt.zero_grad()
        h.append((w.item(), l.item()))
    return h
