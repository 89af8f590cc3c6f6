"""Retention: delete the sessions nobody has appended to for a while (:func:`prune_sessions`).

``prune_sessions(store, older_than=timedelta(days=30))`` deletes, in every project of the store (or in the
project of ``directory``), each session whose ``mtime`` (the store's clock at its last main-transcript append, as
``list_sessions`` reports it) is more than ``older_than`` before now, with its subagent transcripts and summary,
and returns what it deleted. ``dry_run=True`` returns what it would delete and deletes nothing. The command line
is ``session-store prune --older-than 30d [--directory DIR] [--dry-run]``.

How a store is pruned:

- Stores with the optional ``prune_project`` method (every adapter of this project: memory, SQLite,
  PostgreSQL, Redis and Redis Cluster, S3) find the sessions through an index range, not a scan of the project:
  SQLite and PostgreSQL ``mtime < cutoff`` on the ``(project_key, mtime)`` index of the summaries table, Redis
  ``ZRANGEBYSCORE`` on the project's index, S3 one ``ListObjectsV2`` of the project's ``%index/`` per 1,000
  sessions. Each session is then deleted only if it is still older than the cutoff, atomically against appends:
  an append that lands while a session is pruned either keeps it whole or is deleted with it, never cut (SQLite
  one ``BEGIN IMMEDIATE`` transaction per session; PostgreSQL ``DELETE ... WHERE mtime < cutoff`` under the
  summary row's lock; Redis ``WATCH`` on the summary; S3 the main index deleted with ``If-Match`` its ETag).
- Other stores (the SDK's examples, your own) are pruned through ``list_sessions`` and ``delete``: the project's
  listing is filtered and each old session deleted. That path cannot see an append landing between the listing
  and the delete, which is then deleted with its session (whole, as far as the store's ``delete`` is atomic).
- ``directory=None`` means every project of the store, which needs the optional ``list_projects`` method; a
  store without it raises ``ValueError`` asking for a ``directory``.

The cutoff is this machine's clock minus ``older_than``; mtimes come from the store's clock (SQLite and memory:
this machine; PostgreSQL, Redis, S3: the server), so a clock skew between the two moves the cutoff by as much.
Sessions are pruned one after another: a cancelled or failed prune has deleted some of them (each one whole)
and reports nothing; run it again to finish.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import NamedTuple

from .keys import project_key_for_directory
from .types import SessionKey, SessionStore, SessionStoreListEntry, store_implements

__all__ = ["PrunedSession", "parse_duration", "prune_sessions"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMAT = "a whole number followed by s, m, h, d or w (e.g. 30d, 12h, 90m, 3600s)"


class PrunedSession(NamedTuple):
    """One session that :func:`prune_sessions` deleted (or, in a dry run, would delete)."""

    project_key: str
    session_id: str
    mtime: int
    """Its last-modified time, epoch milliseconds (the store's clock)."""


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"3600s"``, ``"2w"`` as a ``timedelta``; ``ValueError`` naming the format."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    number, unit = cleaned[:-1], cleaned[-1:]
    if unit not in _UNITS or not number.isdigit() or not number.isascii():
        raise ValueError(f"duration {text!r} is not {DURATION_FORMAT}")
    return timedelta(seconds=int(number) * _UNITS[unit])


def _seconds(older_than: timedelta | float) -> float:
    if isinstance(older_than, timedelta):
        seconds = older_than.total_seconds()
    elif isinstance(older_than, int | float) and not isinstance(older_than, bool):
        seconds = float(older_than)
    else:
        raise TypeError(
            f"older_than must be a datetime.timedelta or a number of seconds, got {type(older_than).__name__} "
            f"{older_than!r}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"older_than must be a finite, non-negative duration, got {older_than!r}; e.g. timedelta(days=30)"
        )
    return seconds


async def _prune_by_listing(
    store: SessionStore, project_key: str, before_ms: int, dry_run: bool
) -> list[SessionStoreListEntry]:
    for method in ("list_sessions", "delete"):
        if not store_implements(store, method) and not (dry_run and method == "delete"):
            raise ValueError(f"{type(store).__name__} cannot be pruned: it has neither prune_project() nor {method}()")
    found = [row for row in await store.list_sessions(project_key) if row["mtime"] < before_ms]
    if not dry_run:
        for row in found:
            key: SessionKey = {"project_key": project_key, "session_id": row["session_id"]}
            await store.delete(key)
    return found


async def prune_sessions(
    store: SessionStore,
    *,
    older_than: timedelta | float,
    directory: str | None = None,
    dry_run: bool = False,
) -> list[PrunedSession]:
    """Delete every session whose last append is more than ``older_than`` ago; return what was deleted.

    ``older_than``: a ``timedelta`` or a number of seconds (finite, not negative). ``directory``: only the
    project of this directory (:func:`~session_store.keys.project_key_for_directory`); None: every project
    (needs the store's ``list_projects``). ``dry_run``: return what would be deleted, delete nothing.
    Sessions are returned oldest first. See the module docstring for how each store is pruned and what
    concurrent appends see.
    """
    before_ms = int((time.time() - _seconds(older_than)) * 1000)
    if directory is not None:
        projects = [project_key_for_directory(directory)]
    elif store_implements(store, "list_projects"):
        projects = sorted(await store.list_projects())
    else:
        raise ValueError(
            f"{type(store).__name__} cannot list its projects (it has no list_projects()): "
            "pass directory=... to prune one project"
        )
    pruned: list[PrunedSession] = []
    for project_key in projects:
        if store_implements(store, "prune_project"):
            rows = await store.prune_project(project_key, before_ms=before_ms, dry_run=dry_run)
        else:
            rows = await _prune_by_listing(store, project_key, before_ms, dry_run)
        pruned.extend(PrunedSession(project_key, row["session_id"], row["mtime"]) for row in rows)
    pruned.sort(key=lambda record: (record.mtime, record.project_key, record.session_id))
    return pruned
