"""returnbridge: returns platforms (Loop Returns, ZigZag) to Khaos Control."""

__version__ = "0.1.0"
