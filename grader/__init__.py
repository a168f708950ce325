"""dl-grader: grades gradient-descent and autograd exercises by whole trajectories, in a sandbox."""

__version__ = "0.1.0"
