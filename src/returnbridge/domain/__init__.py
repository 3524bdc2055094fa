"""Pure core: canonical model, money, lifecycle, posting policy. Imports nothing outward."""
