"""A report rendered for a reader: terminal table, HTML page, plot, Gradescope, PrairieLearn."""
