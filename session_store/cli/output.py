r"""What the ``session-store`` command line prints, and where (SPEC §6).

A command returns a :class:`Report` (its JSON document and its text for people); while it runs it narrates and
warns through a :class:`Console` and may draw a :class:`ProgressBar` on a terminal. The helpers below turn
store records into table cells: :func:`format_table`, :func:`format_time`, :func:`one_line`, and
:func:`redact_url` so a store password never reaches the screen. Nothing here knows about stores or commands.

Terminal safety: transcripts are untrusted text, and a terminal obeys control characters (ESC starts window
titles, OSC 8 hyperlinks, erase-line and clear-screen sequences; 0x9b is a one-byte CSI). :func:`visible`
writes every C0 control, DEL and C1 control as an escape (``\x1b``, ``\x9b``, ``\r``), keeping only the
ones asked for: table cells and one-line values keep none (a newline shows as ``\n``), the text of a report or
a message keeps newline and tab. :func:`json_text` escapes DEL and C1 as ``\u00XX`` (``json.dumps`` escapes
only C0). The :class:`Console` and the final print of a report apply these, so nothing reaches the terminal raw.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from ..redaction import redact, redact_url

__all__ = [
    "PROG",
    "Console",
    "ProgressBar",
    "Report",
    "format_table",
    "format_time",
    "json_text",
    "one_line",
    "redact_url",
    "shown",
    "visible",
]

PROG = "session-store"
"""The command's name, which starts every line it writes on stderr."""


@dataclass
class Report:
    """What a command produced: ``data`` for ``--json``, ``text`` for people, and the exit status."""

    data: Any
    text: str
    status: int = 0


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_JSON_UNESCAPED_CONTROL = re.compile("[\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED_ESCAPES.get(char) or f"\\x{ord(char):02x}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with each C0 control, DEL and C1 control not in ``keep`` written as an escape (``\\x1b``)."""
    if not keep:
        return _CONTROL.sub(_escape, text)
    return _CONTROL.sub(lambda match: match.group() if match.group() in keep else _escape(match), text)


def shown(text: str, *, url: str | None = None) -> str:
    """A message for the terminal: the secrets of ``url`` (and of any URL in it) redacted, controls visible."""
    return visible(redact(text, url=url), keep="\n\t")


def json_text(data: Any) -> str:
    """``data`` as indented JSON with every control character escaped (DEL and C1 too, as ``\\u00XX``)."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _JSON_UNESCAPED_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


@dataclass
class Console:
    """Where live output goes: narration on stdout (text mode only), warnings and notes on stderr.

    Everything printed has its control characters made visible (newline and tab kept); notes and warnings are
    also redacted (:func:`~session_store.redaction.redact`) with ``store_url``'s secrets, as they may carry a
    driver's error.
    """

    json_mode: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    store_url: str | None = None

    def say(self, text: str) -> None:
        if not self.json_mode:
            print(visible(text, keep="\n\t"), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(f"{PROG}: {shown(text, url=self.store_url)}", file=self.err, flush=True)

    def warn(self, text: str) -> None:
        print(f"{PROG}: warning: {shown(text, url=self.store_url)}", file=self.err, flush=True)


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
    """``text`` with whitespace collapsed and controls visible, cut to ``limit`` characters with an ellipsis.

    The cut never splits an escape such as ``\\x1b``: it falls before it.
    """
    pieces = [visible(char) for char in " ".join((text or "").split())]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    room = limit - 1
    for piece in pieces:
        if len(piece) > room:
            break
        kept.append(piece)
        room -= len(piece)
    return "".join(kept) + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, trailing blanks removed; controls in cells are made visible."""
    table = [list(headers), *([visible(cell) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in table) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table
    )


def format_time(epoch_ms: int | None) -> str:
    """Epoch milliseconds as local ``YYYY-MM-DD HH:MM``; ``-`` when unknown."""
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")
