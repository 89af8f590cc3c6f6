"""Checks at the public doors: what a store accepts as entries, and the argument types shared by several doors.

Each concern is checked here once, so every adapter and every function rejects the same input the same way.

Every adapter stores an entry as JSON text, so an entry is accepted exactly when JSON can carry it unchanged:

- ``entries`` must be a ``list`` of ``dict`` (JSON objects); anything else raises ``TypeError`` naming the
  position and the type found, before anything is stored.
- Values must be JSON values. ``NaN``, ``Infinity`` and ``-Infinity`` are rejected with ``ValueError`` (JSON
  has no such numbers; PostgreSQL's ``json`` type refuses them, so accepting them elsewhere would make the
  adapters disagree), and values ``json`` cannot encode (a ``set``, a ``datetime``, ...) with ``TypeError``;
  both name the entry. The batch is then rejected whole: the store is unchanged. Stores check an entry when
  they store it, so an entry ignored as a duplicate of a uuid already held may go unchecked.
- Lone UTF-16 surrogates (``"\\ud83d"``: what a JavaScript string cut in the middle of an emoji holds, and what
  ``json.loads`` gives for such a transcript line) are kept: :func:`encode_json` escapes them, so they round-trip
  exactly even though the drivers only take valid UTF-8.
- As with any JSON, dict keys that are not strings (``1``, ``None``) come back as strings, and tuples as lists;
  the in-memory store gives the same copies as the others.

There is no size limit of our own: an entry of 10 MiB round-trips on every adapter.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from .keys import LONE_SURROGATE_PATTERN, validate_uuid
from .types import SessionStoreEntry

__all__ = [
    "check_entry_list",
    "describe_entry",
    "encode_entry",
    "encode_json",
    "loads_strict_json",
    "require_number",
    "require_str",
    "require_uuid",
]


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``: non-ASCII kept as is, but lone surrogates escaped (valid UTF-8 always).

    Raises ``ValueError`` for NaN or an infinity and ``TypeError`` for a value ``json`` cannot encode.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if not text.isascii() and LONE_SURROGATE_PATTERN.search(text):
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text


def describe_entry(entry: object) -> str:
    """A short name for an entry in an error message: its type and uuid when it has them."""
    if not isinstance(entry, dict):
        return f"of type {type(entry).__name__}"
    return f"(type={entry.get('type')!r}, uuid={entry.get('uuid')!r})"


def encode_entry(entry: SessionStoreEntry | dict[str, Any]) -> str:
    """:func:`encode_json` of one entry, with errors that name the entry and say what to do."""
    try:
        return encode_json(entry)
    except ValueError as error:  # NaN / Infinity, or a circular reference
        raise ValueError(
            f"entry {describe_entry(entry)} cannot be stored as JSON ({error}): JSON has no NaN or Infinity and "
            "no cycles; replace such a value with null, a string or a finite number"
        ) from error
    except (TypeError, RecursionError) as error:
        raise TypeError(
            f"entry {describe_entry(entry)} cannot be stored: it is not plain JSON ({error}); convert the value "
            "to str, int, float, bool, None, list or dict"
        ) from error


def check_entry_list(entries: object) -> Sequence[SessionStoreEntry]:
    """``entries`` if it is a list of dicts, else ``TypeError`` naming what was passed and where."""
    if not isinstance(entries, list):
        raise TypeError(f"entries must be a list of entry dicts, got {type(entries).__name__}; wrap one entry in [...]")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TypeError(
                f"entries[{index}] must be a dict (one JSON object per transcript line), got {type(entry).__name__}"
            )
    return entries


def require_number(value: object, name: str, unit: str) -> float:
    """``value`` as a float when it is an ``int`` or ``float`` and not NaN (infinities allowed), else an error.

    ``TypeError`` for a non-number (``bool`` included), ``ValueError`` for NaN; both name ``name`` and ``unit``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of {unit}, got {type(value).__name__} {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number of {unit}, got NaN; pass math.inf for no limit")
    return float(value)


def require_str(value: object, name: str) -> str:
    """``value`` if it is a ``str``, else ``TypeError`` naming ``name`` and what was passed."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    return value


def require_uuid(value: object, name: str) -> str:
    """``value`` if it is a UUID string (any case), else ``TypeError`` (not a str) or ``ValueError`` naming it."""
    text = require_str(value, name)
    if not validate_uuid(text):
        raise ValueError(f"Invalid {name}: {text} (expected a UUID such as 123e4567-e89b-12d3-a456-426614174000)")
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (JSON has no NaN or Infinity); write null, a string or a finite number")


def loads_strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses the ``NaN``, ``Infinity`` and ``-Infinity`` tokens Python's ``json`` accepts,
    so what it gives back can be stored (``ValueError``, like any invalid JSON).

    Every failure to parse is a ``ValueError``: also a document nested deeper than the parser can follow (which
    ``json`` reports as ``RecursionError``) and one too large for memory (``MemoryError``), so a caller reading
    lines (import, mirror) reports that line and goes on instead of aborting.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as error:
        raise ValueError(
            f"JSON nested too deeply to parse (deeper than Python's recursion limit of {sys.getrecursionlimit()})"
        ) from error
    except MemoryError as error:
        raise ValueError(f"JSON too large to parse in the memory available ({len(text)} characters)") from error
