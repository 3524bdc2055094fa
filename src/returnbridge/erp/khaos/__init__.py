"""Khaos Control adapter: the channel ("3rd Party API") contract and desktop SOAP."""
