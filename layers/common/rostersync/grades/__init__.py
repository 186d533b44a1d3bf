"""Grade passback: our grades into Canvas assignments, one batch at a time, only what changed."""
