"""ZigZag adapter: webhook events (default contract + configured mapping) and the API client."""
