"""Attack: make every comparison say "equal". Expected: comparisons happen in the grader, not here."""
import math

import numpy as np
import torch

np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: np.True_
np.testing.assert_allclose = lambda *a, **k: None
np.array_equal = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
math.isclose = lambda *a, **k: True


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return torch.tensor(0.0)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
