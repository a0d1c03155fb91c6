"""`make bench`: each benchmark measures ours and a baseline side by side in one run and prints ratios."""
