"""The SDK's ``session_summary`` module: the summary fold and its conversion to a session row.

``summary_entry_to_sdk_info`` is :func:`session_store.summary.summary_entry_to_session_info`.
"""

from __future__ import annotations

from session_store.summary import fold_session_summary, summary_entry_to_session_info

__all__ = ["fold_session_summary", "summary_entry_to_sdk_info"]

summary_entry_to_sdk_info = summary_entry_to_session_info
