"""The Runtime of this process, for workflow and step code that DBOS calls by name.

DBOS is per process, and so is this: ``durable.Durable.start`` installs the runtime and
``stop`` clears it. Workflow modules read it here, never from the module that starts them.
"""

from __future__ import annotations

from returnbridge.flows.engine.runtime import Runtime


class _Current:
    runtime: Runtime | None = None


def install(rt: Runtime | None) -> None:
    _Current.runtime = rt


def runtime() -> Runtime:
    if _Current.runtime is None:
        raise RuntimeError("durable execution has not been started")
    return _Current.runtime
