"""Subagent metadata: the ``.meta.json`` sidecar on disk and the ``agent_metadata`` entry in a store.

Implements reference §3.8. On disk a subagent transcript ``agent-<id>.jsonl`` may have a sidecar
``agent-<id>.meta.json`` (its ``toolUseId``, ``parentAgentId``, ...). In a store the sidecar travels inside
the subagent's entry stream as ``{"type": "agent_metadata", ...}``. Resume, import and the readers share these
helpers so the naming and the "last one wins" rule live in one place.

The file helpers are blocking; async callers run them through ``compat.run_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .validation import loads_strict_json

__all__ = [
    "AGENT_METADATA_TYPE",
    "agent_metadata_sidecar_path",
    "parent_ids_from_agent_metadata",
    "read_agent_metadata_sidecar",
    "split_agent_metadata",
]

AGENT_METADATA_TYPE = "agent_metadata"
"""``type`` of the store entry that carries a subagent's sidecar."""

_TRANSCRIPT_SUFFIX = ".jsonl"
_SIDECAR_SUFFIX = ".meta.json"


def agent_metadata_sidecar_path(transcript_path: Path) -> Path:
    """``.../agent-<id>.jsonl`` -> ``.../agent-<id>.meta.json`` in the same directory.

    Raises ``ValueError`` when ``transcript_path`` does not end in ``.jsonl``.
    """
    name = transcript_path.name
    if not name.endswith(_TRANSCRIPT_SUFFIX):
        raise ValueError(
            f"subagent transcript path {str(transcript_path)!r} does not end in {_TRANSCRIPT_SUFFIX!r}; "
            "pass the agent-<id>.jsonl file"
        )
    return transcript_path.with_name(name[: -len(_TRANSCRIPT_SUFFIX)] + _SIDECAR_SUFFIX)


def read_agent_metadata_sidecar(transcript_path: Path) -> dict[str, Any] | None:
    """The JSON object in the sidecar beside ``transcript_path``, or None.

    None when the sidecar is missing, is not valid UTF-8 JSON (NaN and Infinity are not), or is not an object:
    an unusable optional sidecar counts as absent. Other ``OSError``s (permission denied, a directory in its place) propagate.
    """
    try:
        text = agent_metadata_sidecar_path(transcript_path).read_text(encoding="utf-8")
        metadata = loads_strict_json(text)
    except FileNotFoundError:
        return None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return metadata if isinstance(metadata, dict) else None


def split_agent_metadata(entries: Iterable[Any]) -> tuple[dict[str, Any] | None, list[Any]]:
    """Separate ``agent_metadata`` entries from transcript lines.

    Returns ``(metadata, transcript)``: a shallow copy of the **last** ``agent_metadata`` dict (resume
    rewrites it, so the last one wins) or None, and every other item (non-dicts included) in order.
    """
    metadata: dict[str, Any] | None = None
    transcript: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("type") == AGENT_METADATA_TYPE:
            metadata = dict(entry)
        else:
            transcript.append(entry)
    return metadata, transcript


def parent_ids_from_agent_metadata(metadata: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """``(toolUseId, parentAgentId)`` of a sidecar or ``agent_metadata`` entry; non-``str`` values -> None."""
    if not metadata:
        return None, None
    tool_use_id = metadata.get("toolUseId")
    parent_agent_id = metadata.get("parentAgentId")
    return (
        tool_use_id if isinstance(tool_use_id, str) else None,
        parent_agent_id if isinstance(parent_agent_id, str) else None,
    )
