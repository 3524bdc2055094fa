"""Shopify sandbox: the Admin GraphQL subset the refund gate uses."""
