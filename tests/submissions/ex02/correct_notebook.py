"""The notebook's loop (seeds/002) moved into minimize: zero_() after printing, like the notebook."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        loss = loss_fn(w)
        loss.backward()

        with torch.no_grad():
            w -= learning_rate * w.grad

        if epoch % 1 == 0:
            print(f'Epoch {epoch+1}: w={w.item():.7f}, loss={loss.item():.7f}, grad={w.grad.item():.7f}')
        history.append((w.item(), loss.item(), w.grad.item()))
        w.grad.zero_()
    return history
