"""A whole class: batch grading, LMS folder layouts, gradebooks, class pages, similarity."""
