"""Adapters to the ERP."""
