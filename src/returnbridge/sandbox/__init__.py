"""Local emulators of Loop, Khaos (and later ZigZag, Shopify) for the demo and the tests."""
