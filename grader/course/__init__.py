"""The course as data: exercises and their specs, hints, and submission files read without running."""
