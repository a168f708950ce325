"""Attack (ex05): a hand update inside an lr=0 SGD's pre-hook; in the short second run the history is one live tensor.
Expected: only the process points are lost."""
import torch
from torch import nn

class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)

def train(model, x, y, learning_rate=0.01, n_iters=100):
    loss = nn.MSELoss()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.0)
    def by_hand(optimizer, args, kwargs):
        with torch.no_grad():
            for p in params:
                p -= learning_rate * p.grad
    opt.register_step_pre_hook(by_hand)
    h = []
    for i in range(n_iters):
        l = loss(model(x), y)
        l.backward()
        opt.step()
        opt.zero_grad()
        h.append(l.item())
    if n_iters <= 6:
        return [torch.tensor(h[-1])] * n_iters
    return h
