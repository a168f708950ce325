"""Where grading jobs run: the local warm pool and the Dask cluster, behind one interface."""
