"""What the ``session-store`` command line prints, and where (SPEC §6).

A command returns a :class:`Report` (its JSON document and its text for people); while it runs it narrates and
warns through a :class:`Console` and may draw a :class:`ProgressBar` on a terminal. The helpers below turn
store records into table cells: :func:`format_table`, :func:`format_time`, :func:`one_line`, and
:func:`redact_url` so a store password never reaches the screen. Nothing here knows about stores or commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PROG", "Console", "ProgressBar", "Report", "format_table", "format_time", "one_line", "redact_url"]

PROG = "session-store"
"""The command's name, which starts every line it writes on stderr."""


@dataclass
class Report:
    """What a command produced: ``data`` for ``--json``, ``text`` for people, and the exit status."""

    data: Any
    text: str
    status: int = 0


@dataclass
class Console:
    """Where live output goes: narration on stdout (text mode only), warnings and notes on stderr."""

    json_mode: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, text: str) -> None:
        if not self.json_mode:
            print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(f"{PROG}: {text}", file=self.err, flush=True)

    def warn(self, text: str) -> None:
        print(f"{PROG}: warning: {text}", file=self.err, flush=True)


class ProgressBar:
    """A one-line progress bar on a terminal stream; draws nothing when the stream is not a terminal."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = total > 0 and self.stream.isatty()
        self._drawn = 0

    def render(self, done: int, note: str = "") -> str:
        """The bar for ``done`` of ``total`` steps, e.g. ``importing [#######.....]  3/10 note``."""
        done = max(0, min(done, self.total))
        filled = self.width * done // self.total if self.total else self.width
        counter = f"{done:>{len(str(self.total))}}/{self.total}"
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {counter}"
        if note:
            line += f" {note}"
        return line[: max(self._columns() - 1, 10)]

    def _columns(self) -> int:
        """The terminal's width; 80 when it cannot be told (or reports 0, as a fresh pseudo-terminal does)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            return 80

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        line = self.render(done, note)
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def finish(self) -> None:
        """Erase the bar so the next output starts on a clean line."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def one_line(text: str | None, limit: int) -> str:
    """``text`` with whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, trailing blanks removed."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[column]) for row in table) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table
    )


def format_time(epoch_ms: int | None) -> str:
    """Epoch milliseconds as local ``YYYY-MM-DD HH:MM``; ``-`` when unknown."""
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
