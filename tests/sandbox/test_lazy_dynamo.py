"""The worker's stand-in for torch._dynamo: eager optimizers never load the real one, compiling still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # each starts an interpreter that imports torch (and dynamo)

PROGRAM = textwrap.dedent("""
    import sys, torch
    from grader.sandbox import lazy_dynamo
    assert lazy_dynamo.install()
    def fit(optimizer_class):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optimizer = optimizer_class(model.parameters(), lr=0.1)
        x, y = torch.rand(8, 3), torch.rand(8, 2)
        for _ in range(5):
            loss = torch.nn.MSELoss()(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.weight.detach().clone()
    eager = {c.__name__: fit(c) for c in (torch.optim.SGD, torch.optim.Adam)}
    print("stand-in kept:", isinstance(sys.modules["torch._dynamo"], lazy_dynamo.LazyDynamo))
    compiled = torch.compile(lambda t: t * 2 + 1, backend="eager")
    print("compiled:", compiled(torch.ones(2)).tolist())
    print("real loaded:", not isinstance(sys.modules["torch._dynamo"], lazy_dynamo.LazyDynamo))
    print("same after load:", all(torch.equal(eager[c.__name__], fit(c)) for c in (torch.optim.SGD, torch.optim.Adam)))
""")


def run(program: str) -> str:
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_eager_training_never_loads_dynamo_and_compiling_still_works():
    out = run(PROGRAM)
    assert "stand-in kept: True" in out
    assert "compiled: [3.0, 3.0]" in out
    assert "real loaded: True" in out
    assert "same after load: True" in out


def test_stand_in_gives_the_same_numbers_as_real_dynamo():
    without = PROGRAM.split("print(\"compiled")[0].replace("assert lazy_dynamo.install()", "import torch._dynamo")
    real = run(without + "\nprint([w.tolist() for w in eager.values()])").splitlines()[-1]
    stand_in = run(PROGRAM.split("print(\"compiled")[0] + "\nprint([w.tolist() for w in eager.values()])")
    assert stand_in.splitlines()[-1] == real
