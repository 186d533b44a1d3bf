"""The admin API's routes, one module per area of the settings page."""
