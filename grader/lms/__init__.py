"""Learning-management systems: autograder entry points, upload packages, results validation."""
