"""Errors shared by the rooms that consume queues (each room keeps its own errors beside its code:
canvas/errors.py, tenants.py, events/intake.py ...; the admin API maps them to HTTP in one place)."""

from __future__ import annotations


class RetryLaterError(Exception):
    """The message failed for a reason a later attempt may not have: it goes back to its queue."""
