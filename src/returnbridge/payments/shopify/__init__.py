"""Shopify Admin GraphQL: orders, their refunds, idempotent refundCreate, store credit and
gift cards (API version 2026-04; documents validated against its schema)."""
