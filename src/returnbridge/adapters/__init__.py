"""The adapter kit: what every external client needs, implemented once.

- ``http``: client construction with a mandatory timeout, and the one retry loop
  (exponential backoff, optional jitter, ``Retry-After`` in seconds or as an HTTP date,
  capped) driven by a :class:`~returnbridge.adapters.http.RetryPolicy`.
- ``ratelimit``: a thread-safe token bucket, shared per API key.
- ``values``: tolerant readers for the values platforms really send.
- ``errors``: :class:`~returnbridge.adapters.errors.PayloadInvalid`.

This package sits under sources/, payments/ and erp/: it imports only domain and config.
"""
