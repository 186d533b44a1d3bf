"""Sync logic: planning runs, building a course's roster from Canvas, diffing and writing it."""
