"""rostersync: keeps an assessment platform's rosters in step with Canvas LMS."""

__version__ = "0.1.0"
