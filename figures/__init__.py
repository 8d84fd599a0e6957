"""Figures 2, 3, 4 and 6 of the DiVA paper, from the paper's numbers and from our results (`python -m figures`)."""
