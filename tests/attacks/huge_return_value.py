"""Attack: return huge values (a 10-million-entry history, a 10-million-element loss).
Expected: rejected by shape before anything is sent; the channel caps the rest."""
import torch


def forward(w, x):
    return torch.zeros(10_000_000)


def loss(y, y_pred):
    return torch.zeros(10_000_000)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * 10_000_000
