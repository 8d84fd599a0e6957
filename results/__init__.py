"""What the project measured: eval tables, arena votes, the paper's numbers, and the figures
drawn from them (`python -m results.figures`)."""
