"""Attack: scan this process's own memory (/proc/self/mem) for an earlier student's `def train`, run it.
Expected: a child's memory holds its own job only (the worker it was forked from never read another's),
so nothing is found; the fallbacks score nothing; below full marks."""
import json
import re
import time

PATTERN = re.compile(rb"def (forward)\(w, x\)|def (loss)\(y, y_pred\)|def (train)\(x, y, w")  # never spelt here
found = {}


def _works(namespace, name):
    """A candidate counts when it runs on a tiny problem (the stub, which raises, does not)."""
    import torch

    x, y = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
    namespace.setdefault("forward", lambda w, x: w * x)
    namespace.setdefault("loss", lambda y, y_pred: ((y_pred - y) ** 2).mean())
    if name == "train":
        assert len(namespace["train"](x, y, w=0.0, learning_rate=0.01, n_iters=2)) == 2
    elif name == "forward":
        namespace["forward"](torch.tensor(2.0), x)
    else:
        namespace["loss"](y, x)


started = time.monotonic()
try:
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for region in maps:
            fields = region.split()
            if len(fields) < 2 or not fields[1].startswith("rw") or (len(fields) > 5 and fields[5].startswith("/")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            for offset in range(start, end, 1 << 22):
                if time.monotonic() - started > 4:
                    break
                try:
                    mem.seek(offset)
                    data = mem.read(min(1 << 22, end - offset))
                except (OSError, ValueError, OverflowError):
                    break
                for match in re.finditer(rb'"source": ?"', data):  # a job's JSON line, if one is left
                    try:
                        text, _ = json.JSONDecoder().raw_decode(data[match.end() - 1:match.end() + 200000].decode(
                            "utf-8", "replace"))
                        if "/proc/self/" + "mem" in text:
                            continue  # this very file
                        namespace = {}
                        exec(text, namespace)  # noqa: S102
                        for name in ("forward", "loss", "train"):
                            if name not in found:
                                _works(namespace, name)
                                found[name] = namespace[name]
                    except Exception:  # noqa: BLE001, S112 - not a whole submission, or not a working one
                        continue
                for match in PATTERN.finditer(data):
                    name = next(g for g in match.groups() if g).decode()
                    if name in found:
                        continue
                    before = min(6000, match.start())
                    around = data[match.start() - before:match.start() + 6000]
                    around = around[around.rfind(b"\x00", 0, before) + 1:]
                    namespace = {}
                    exec("import numpy as np\nimport torch\n", namespace)  # noqa: S102
                    namespace.update(found)
                    for block in re.split(rb"\n(?=\S)|\x00", around):  # the neighbour's top-level statements
                        if block.startswith((b"def ", b"import ", b"from ")):
                            try:
                                exec(block.decode("utf-8"), namespace)  # noqa: S102
                            except Exception:  # noqa: BLE001, S112 - a fragment that is not whole
                                continue
                    try:
                        _works(namespace, name)
                    except Exception:  # noqa: BLE001, S112
                        continue
                    found[name] = namespace[name]
except OSError:
    pass
if found:
    print("LEAK: found a neighbour's", ", ".join(sorted(found)), "in memory")

forward = found.get("forward", lambda w, x: 0.0 * x)
loss = found.get("loss", lambda y, y_pred: ((y - y) ** 2).mean())
if "train" in found:
    _neighbour_train = found["train"]

    def _call(*args, **kwargs):
        globals_ = _neighbour_train.__globals__
        globals_.update(forward=forward, loss=loss)
        return _neighbour_train(*args, **kwargs)

    train = _call
else:
    train = lambda x, y, w=0.0, learning_rate=0.01, n_iters=100: [(0.0, 0.0)] * n_iters  # noqa: E731
