"""Khaos Control sandbox."""
