"""Attack: train takes SIGALRM away from the grader's per-call budget (SIG_IGN) and loops forever. Expected: the
budget cannot stop it, the whole run's wall clock does; forward()'s and loss()'s points, sent before, still count."""
import signal


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
