"""Attack (ex03): no autograd at all; the probe's evidence record, found in the closure of the patched
torch.autograd.backward, is written by hand each epoch. Expected: the backward() check earns nothing."""
import torch


def find_record():
    for cell in torch.autograd.backward.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if type(value).__name__ == "Events":
            return value
    return None


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def forge(record, w, grad):
    """What a backward() on w would have left in the probe's record: a count, and where it went."""
    record.backward += 1
    record.backward_done += 1
    record.log("B")
    if hasattr(record, "backward_values"):
        record.backward_values.append([w])
    if hasattr(record, "backward_leaves"):
        record.backward_leaves.append([[w, grad]])


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    record = find_record()
    w = torch.tensor(float(w), dtype=x.dtype, device=x.device)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        grad = (2 * x * (y_pred - y)).mean()
        if record is not None:
            forge(record, w.item(), grad.item())
        w = w - learning_rate * grad
        history.append((w.item(), l.item()))
    return history
