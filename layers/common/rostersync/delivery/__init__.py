"""Roster delivery to the assessment platform: the change feed's content and the read API's logic."""
