"""Synthetic transcripts for the benchmarks: plain dicts shaped like Claude Code transcript lines."""

from __future__ import annotations

import uuid as uuid_module
from datetime import UTC, datetime, timedelta
from typing import Any

Entry = dict[str, Any]

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def new_id() -> str:
    return str(uuid_module.uuid4())


def iso(seconds: float) -> str:
    moment = BASE_TIME + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transcript(session_id: str, count: int, *, cwd: str = "/tmp/bench-project", start: float = 0.0) -> list[Entry]:
    """``count`` alternating user/assistant entries chained by ``parentUuid``, one second apart."""
    entries: list[Entry] = []
    parent: str | None = None
    for index in range(count):
        uuid = new_id()
        if index % 2 == 0:
            message: dict[str, Any] = {"role": "user", "content": f"question {index} about the benchmark"}
            kind = "user"
        else:
            message = {
                "role": "assistant",
                "content": [{"type": "text", "text": f"answer {index}: the numbers are in the table"}],
            }
            kind = "assistant"
        entries.append(
            {
                "type": kind,
                "uuid": uuid,
                "parentUuid": parent,
                "sessionId": session_id,
                "timestamp": iso(start + index),
                "cwd": cwd,
                "message": message,
            }
        )
        parent = uuid
    return entries
