"""Everything that speaks to Canvas: HTTP client, OAuth, pagination, scopes and Canvas object models."""
