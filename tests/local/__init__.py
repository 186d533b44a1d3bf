"""Tests of the Canvas simulator (local/rostersync_local/canvas_sim): the stand-in for Canvas."""
