"""The SDK's ``claude_agent_sdk.testing`` module: the conformance harness with the SDK's contracts.

:func:`run_session_store_conformance` is :func:`session_store.conformance.run_session_store_conformance` with
``profile="sdk"``: exactly the SDK harness's 14 contracts, so a store that passes the SDK's harness passes
this one. Use ``session_store.run_session_store_conformance`` (the strict profile) for this project's stores.
"""

from __future__ import annotations

from session_store.conformance import StoreFactory
from session_store.conformance import run_session_store_conformance as _run

__all__ = ["run_session_store_conformance"]


async def run_session_store_conformance(
    make_store: StoreFactory, *, skip_optional: frozenset[str] = frozenset()
) -> None:
    """Run the SDK's contracts on fresh stores from ``make_store``; a failure raises ``AssertionError``."""
    await _run(make_store, skip_optional=skip_optional, profile="sdk")
