"""The operator command line: `rostersync ...`."""
