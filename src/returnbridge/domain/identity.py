"""Identity of a return in Khaos (ARCHITECTURE 6.1)."""

from __future__ import annotations

MAX_ASSOCIATED_REF = 50


class IdentityError(ValueError):
    """An AssociatedRef that Khaos would not accept."""


def associated_ref(prefix: str, source_return_id: str, follow_up: int = 1) -> str:
    """``{prefix}{id}``, with ``-N`` for the N-th follow-up document (N >= 2)."""
    rid = source_return_id.strip()
    if not rid:
        raise IdentityError("a return without a source id cannot be given an AssociatedRef")
    ref = f"{prefix}{rid}" if follow_up <= 1 else f"{prefix}{rid}-{follow_up}"
    if len(ref) > MAX_ASSOCIATED_REF:
        raise IdentityError(
            f"AssociatedRef {ref!r} is {len(ref)} characters; Khaos accepts at most "
            f"{MAX_ASSOCIATED_REF}. Shorten the associated_ref_prefix."
        )
    return ref
