"""Attack: read the reference solution and the hidden references from disk and use them.
Expected: none of them is visible in the sandbox; nothing leaks into the report."""
import os

PATHS = ["@@REPO@@/solutions/ex03.py", "@@REPO@@/exercises/ex03/hidden/references.json",
         "@@REPO@@/exercises/ex03/references/visible.json", "@@REPO@@/exercises/ex03/hidden/spec.toml"]
found = {}
for path in PATHS:
    try:
        with open(path) as handle:
            found[path] = handle.read()
    except OSError:
        pass
# Look around, too, within bounds.
for top in ("/work", "/root", "/home", "/tmp", "/srv", "/mnt", "/"):
    for count, (root, dirs, files) in enumerate(os.walk(top)):
        if count > 3000:
            break
        for name in files:
            if name in ("references.json", "ex03.py") and "site-packages" not in root:
                try:
                    with open(os.path.join(root, name)) as handle:
                        found[os.path.join(root, name)] = handle.read()
                except OSError:
                    pass
for path, text in found.items():
    print("LEAK", path, text[:200])
solution = found.get("@@REPO@@/solutions/ex03.py")
if solution:
    exec(solution)  # the whole point: pass with the reference solution
else:
    def forward(w, x):
        return w * x

    def loss(y, y_pred):
        return 0.0

    def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
        return [(0.0, 0.0)] * n_iters
