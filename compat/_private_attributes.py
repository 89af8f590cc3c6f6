"""The private attributes of asyncio that ``compat`` reads or writes, declared in one place.

``compat`` reaches past asyncio's public API where the public API has no equivalent (binding a primitive made
under a finished loop to the running one; reading a semaphore's count; seeing a cancellation requested but
not yet delivered). These names are not covered by CPython's compatibility promise, so each is listed here
and ``tests/test_compat_private_attributes.py`` checks, on every Python in the test matrix, that it still
exists where compat expects it: a rename in a future CPython fails that test by name and version instead of
silently sending compat down a slow or wrong path.

Whoever makes compat read another private attribute adds it here (the test also scans compat's source for
private attributes of asyncio objects missing from this list).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ASYNCIO_PRIVATE_ATTRIBUTES", "PrivateAttribute"]


class PrivateAttribute(NamedTuple):
    """``owner.name`` is read (or written) by ``used_by``; ``owner`` is ``asyncio`` or an asyncio class."""

    owner: str
    name: str
    used_by: str


ASYNCIO_PRIVATE_ATTRIBUTES: tuple[PrivateAttribute, ...] = (
    PrivateAttribute("asyncio", "_get_running_loop", "compat._backend: the running loop, or None, without raising"),
    PrivateAttribute("Lock", "_loop", "compat._sync: an idle Lock bound to a finished loop is unbound"),
    PrivateAttribute("Lock", "_waiters", "compat._sync: Lock idleness and stale-loop check"),
    PrivateAttribute("Lock", "_locked", "compat._sync: only a held Lock can be contended (stale-loop check)"),
    PrivateAttribute("Event", "_loop", "compat._sync: an idle Event bound to a finished loop is unbound"),
    PrivateAttribute("Event", "_waiters", "compat._sync: Event idleness"),
    PrivateAttribute("Event", "_value", "compat._sync: an unset Event can be waited on (stale-loop check)"),
    PrivateAttribute("Semaphore", "_loop", "compat._sync: an idle Semaphore bound to a finished loop is unbound"),
    PrivateAttribute("Semaphore", "_waiters", "compat._sync: Semaphore / CapacityLimiter idleness"),
    PrivateAttribute("Semaphore", "_value", "compat._sync: the free slots of Semaphore / CapacityLimiter"),
    PrivateAttribute("BoundedSemaphore", "_value", "compat._sync: a bounded Semaphore starts below its bound"),
    PrivateAttribute("Condition", "_loop", "compat._sync: an idle Condition bound to a finished loop is unbound"),
    PrivateAttribute("Condition", "_waiters", "compat._sync: Condition idleness and stale-loop check"),
    PrivateAttribute("Queue", "_loop", "compat._sync: an idle Queue bound to a finished loop is unbound"),
    PrivateAttribute("Queue", "_queue", "compat._sync: Queue room / emptiness without a method call (put, get)"),
    PrivateAttribute(
        "Queue", "_getters", "compat._sync: Queue idleness; close() fails waiting and later gets (3.11/3.12)"
    ),
    PrivateAttribute(
        "Queue", "_putters", "compat._sync: Queue idleness; close() fails waiting and later puts (3.11/3.12)"
    ),
    PrivateAttribute("TaskGroup", "_parent_task", "compat._tasks: the task running a group's body (cancel())"),
    PrivateAttribute("TaskGroup", "_tasks", "compat._tasks: the children cancel() cancels once the body is done"),
    PrivateAttribute("Task", "_must_cancel", "compat._timeouts: a cancel() requested but not yet delivered"),
    PrivateAttribute("Task", "_cancel_message", "compat._timeouts: the message of that pending cancel()"),
)
