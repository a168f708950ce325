"""Attack (ex04): the update by hand inside an lr=0 SGD's pre-hook, the history as views of one buffer. Expected: only
the process points are lost."""
import torch
from torch import nn

def forward(w, x):
    return w * x

def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    opt = torch.optim.SGD([w], lr=0.0)
    def by_hand(optimizer, args, kwargs):
        with torch.no_grad():
            w.sub_(learning_rate * w.grad)    # the update, by hand, not the optimizer's
    opt.register_step_pre_hook(by_hand)
    buf = torch.zeros(n_iters, 2, dtype=torch.float64)
    for i in range(n_iters):
        l = loss(forward(w, x), y)
        l.backward()
        opt.step()
        opt.zero_grad()
        buf[i, 0], buf[i, 1] = w.item(), l.item()
    return [(buf[i, 0], buf[i, 1]) for i in range(n_iters)]
