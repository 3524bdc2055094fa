"""Dot paths into a JSON payload, as written in ``[zigzag.webhook.fields]``.

``customer.email`` walks objects; ``items[]`` (or ``items``) names a list; ``lines[0]``
picks one element. A missing step gives ``None``; a step into something that is not an
object or list is reported as :class:`PayloadInvalid` naming the path.
"""

from __future__ import annotations

import re
from typing import Any

from returnbridge.adapters.errors import PayloadInvalid

_STEP = re.compile(r"^(?P<key>[^\[\]]*)(?:\[(?P<index>\d*)\])?$")


def steps(path: str) -> list[tuple[str, int | None]]:
    """``a.b[2].c`` -> [("a", None), ("b", 2), ("c", None)]; ``[]`` adds no index."""
    out: list[tuple[str, int | None]] = []
    for part in path.strip().split("."):
        match = _STEP.match(part)
        if match is None:
            raise PayloadInvalid(f"cannot read the configured path {path!r}")
        index = match.group("index")
        out.append((match.group("key"), int(index) if index else None))
    return out


def get(payload: Any, path: str) -> Any:
    """The value at ``path`` in ``payload``, or None when any step is absent."""
    if not path.strip():
        return None
    current = payload
    walked: list[str] = []
    for key, index in steps(path):
        if key:
            if current is None:
                return None
            if not isinstance(current, dict):
                raise PayloadInvalid(f"expected an object, got {type(current).__name__}",
                                     path=".".join(walked) or "(body)")
            current = current.get(key)
            walked.append(key)
        if index is not None:
            if current is None:
                return None
            if not isinstance(current, list):
                raise PayloadInvalid(f"expected a list, got {type(current).__name__}",
                                     path=".".join(walked))
            current = current[index] if index < len(current) else None
            walked[-1:] = [f"{walked[-1] if walked else ''}[{index}]"]
    return current


def peek(payload: Any, path: str) -> Any:
    """Like :func:`get`, but None instead of an error (for routing and dedupe)."""
    try:
        return get(payload, path)
    except PayloadInvalid:
        return None
