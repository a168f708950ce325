"""Attack: a segmentation fault in train. Expected: a crash report, no core dump, earlier checks kept."""
import ctypes


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    ctypes.string_at(0)
