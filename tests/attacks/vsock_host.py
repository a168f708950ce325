"""Attack: leave through a socket family that network namespaces do not cover (AF_VSOCK: a virtual
machine's host; also AF_PACKET). Expected: those families are refused."""
import socket

for family, kind, address in ((getattr(socket, "AF_VSOCK", 40), socket.SOCK_STREAM, (2, 1024)),
                              (getattr(socket, "AF_VSOCK", 40), socket.SOCK_STREAM, (1, 1024)),
                              (17, socket.SOCK_RAW, None)):  # AF_PACKET
    try:
        sock = socket.socket(family, kind)
    except OSError:
        continue
    try:
        if address is not None:
            sock.settimeout(1)
            sock.connect(address)
            print("CONNECTED", family, address)
        else:
            print("ESCAPED socket family", family)
    except OSError:
        print("ESCAPED socket family", family, "(created, connect refused)")
    finally:
        sock.close()


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
