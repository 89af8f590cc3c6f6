"""Checks of what a store hands back: one place for every caller of a ``SessionStore`` read method.

A store is user code. One that returns the wrong type would otherwise be used silently and wrongly: a dict from
``load`` iterated as its keys (resume would write the keys as transcript lines), a str from ``list_subkeys``
iterated as one-character subpaths, ``None`` from ``list_sessions`` taken for "no sessions". Every function of
the library that reads from a store passes the result through :func:`checked_store_result`, which raises
``TypeError`` naming the store method, what it returned and what it should return:

=========================  ==================================================================================
method                     must return
=========================  ==================================================================================
``load``                   ``None`` or a ``list`` of dicts (entries; their fields are read with care where used)
``list_sessions``          a ``list`` of dicts with a str ``session_id`` and a number ``mtime``
``list_session_summaries`` a ``list`` of dicts with a str ``session_id``, a number ``mtime`` and a dict ``data``
``list_subkeys``           a ``list`` of str
=========================  ==================================================================================

The results of ``append`` and ``delete`` are ignored, as the protocol says they return None.
"""

from __future__ import annotations

from typing import Any

__all__ = ["checked_store_result"]

_ROW_FIELDS: dict[str, tuple[tuple[str, tuple[type, ...], str], ...]] = {
    "list_sessions": (("session_id", (str,), "str"), ("mtime", (int, float), "number")),
    "list_session_summaries": (
        ("session_id", (str,), "str"),
        ("mtime", (int, float), "number"),
        ("data", (dict,), "dict"),
    ),
}

_ITEM_TYPES: dict[str, type] = {"load": dict, "list_subkeys": str}

_EXPECTED = {
    "load": "a list of entries (dicts) or None",
    "list_sessions": "a list of {'session_id': str, 'mtime': int} rows",
    "list_session_summaries": "a list of {'session_id': str, 'mtime': int, 'data': dict} summaries",
    "list_subkeys": "a list of subpath strings",
}


def _wrong(method: str, what: str) -> TypeError:
    return TypeError(
        f"SessionStore.{method}() returned {what}, expected {_EXPECTED[method]}; fix the store's {method}() "
        "to return that"
    )


def _type_name(value: object) -> str:
    return type(value).__name__


def checked_store_result(method: str, value: Any) -> Any:
    """``value`` unchanged if it has the shape ``method`` must return (see the module docstring), else
    ``TypeError`` naming the method, the type received and the type expected."""
    if value is None and method == "load":
        return value
    if not isinstance(value, list):
        raise _wrong(method, _type_name(value))
    if method in _ITEM_TYPES:
        wanted = _ITEM_TYPES[method]
        for index, item in enumerate(value):
            if not isinstance(item, wanted):
                raise _wrong(method, f"a list whose item {index} is {_type_name(item)} {item!r:.80}")
        return value
    fields = _ROW_FIELDS[method]
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise _wrong(method, f"a list whose item {index} is {_type_name(row)} {row!r:.80}")
        for name, types, spelled in fields:
            field = row.get(name)
            if not isinstance(field, types) or isinstance(field, bool):
                raise _wrong(
                    method, f"a list whose item {index} has {name}={field!r:.80} ({_type_name(field)}, not {spelled})"
                )
    return value
