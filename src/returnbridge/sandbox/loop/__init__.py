"""Loop Returns sandbox."""
