"""The metrics /metrics exposes; defined in ``returnbridge.metrics`` so flows can count too."""

from returnbridge.metrics import KHAOS_POLLS, KHAOS_SERVED, REGISTRY, WEBHOOKS

__all__ = ["KHAOS_POLLS", "KHAOS_SERVED", "REGISTRY", "WEBHOOKS"]
