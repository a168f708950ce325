"""Attack: allocate memory until something breaks (stops by itself at 3 GiB so a broken sandbox cannot
take the machine down). Expected: stopped at the memory limit; reported as such."""


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    hoard = []
    for _ in range(48):
        hoard.append(bytearray(64 * 1024 * 1024))  # touched: bytearray zero-fills
    return [(0.0, 0.0)] * n_iters
