"""Loop Returns adapter."""
