"""Grading one submission: read, run in the sandbox, compare, diagnose, build the report."""
