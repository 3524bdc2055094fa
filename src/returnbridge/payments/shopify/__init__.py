"""Shopify Admin GraphQL: orders, their refunds, and idempotent refundCreate."""
