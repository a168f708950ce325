"""Attack: NaN and inf everywhere (NaN != NaN tricks). Expected: they travel as "nan"/"inf" and fail."""
import math

import torch


def forward(w, x):
    return torch.full_like(x, math.nan)


def loss(y, y_pred):
    return torch.tensor(math.inf)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(math.nan, -math.inf) if i % 2 else (math.inf, math.nan) for i in range(n_iters)]
