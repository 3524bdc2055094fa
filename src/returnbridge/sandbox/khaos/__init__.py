"""A stateful Khaos Control sandbox (channel poller, stock pushes, desktop SOAP service)."""
