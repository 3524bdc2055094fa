"""Exceptions and what watches for them: operator actions, suggestions, alerts to the
owning teams, connection and schedule health, the coverage audit and the support bundle."""
