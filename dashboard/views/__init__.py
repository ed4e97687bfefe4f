"""One rendering module per page; the logic they show lives in the modules above."""
