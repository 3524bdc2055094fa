"""Flows: orchestration of adapters, domain decisions and storage."""
