"""``prune``: delete the sessions not appended to for longer than ``--older-than`` (:mod:`session_store.retention`).

``session-store prune --older-than 30d [--directory DIR] [--dry-run]``: without ``--directory`` every project of
the store (which then needs ``list_projects``: every adapter of this project has it); ``--dry-run`` lists what
would go and deletes nothing. Durations: a whole number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from ..retention import parse_duration, prune_sessions
from ..types import SessionStore
from .output import Report, format_table, format_time, redact_url

__all__ = ["duration_argument", "prune_command"]


def duration_argument(text: str) -> timedelta:
    """``--older-than``'s type: a usage error naming the format for anything else."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _visible(text: str) -> str:
    """``text`` with control and other unprintable characters shown as escapes (never sent to the terminal)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def describe_duration(duration: timedelta) -> str:
    """``timedelta(days=30)`` as ``30d`` (the largest unit that divides it)."""
    seconds = int(duration.total_seconds())
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def prune_command(
    store: SessionStore, store_url: str, older_than: timedelta, directory: str | None, *, dry_run: bool
) -> Report:
    pruned = await prune_sessions(store, older_than=older_than, directory=directory, dry_run=dry_run)
    where = f"project {directory}" if directory is not None else "every project"
    verb = "would delete" if dry_run else "deleted"
    data = {
        "dry_run": dry_run,
        "older_than_seconds": older_than.total_seconds(),
        "sessions": [record._asdict() for record in pruned],
    }
    summary = (
        f"{verb} {len(pruned)} session(s) not modified for {describe_duration(older_than)} in {_visible(where)} "
        f"of {redact_url(store_url)}"
    )
    if not pruned:
        return Report(data, summary)
    rows = [(_visible(record.project_key), _visible(record.session_id), format_time(record.mtime)) for record in pruned]
    return Report(data, format_table(("PROJECT", "SESSION", "MODIFIED"), rows) + "\n" + summary)
