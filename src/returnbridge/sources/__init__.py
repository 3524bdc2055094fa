"""Adapters for returns platforms: each owns its platform's quirks."""
