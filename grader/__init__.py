"""dl-grader: grades gradient-descent and autograd exercises by whole trajectories, in a sandbox."""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext grader`: the `%grade EX` magic (imported only now: `import grader` stays light). IPython looks
    for this hook in the package it is given, so it lives here: the one import from this module upwards."""
    from grader.notebook import magics

    magics.register(ipython)
