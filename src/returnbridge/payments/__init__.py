"""Payment providers (refunds the integration drives after the Khaos credit note)."""
