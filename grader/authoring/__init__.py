"""Authoring: tools for the instructor who writes an exercise (mutation analysis, the spec's schema, soundness)."""
