"""Project keys, session ids and transcript paths: how a directory or a file maps to a ``SessionKey``.

Implements reference §3.1-§3.7 (constants, UUID check, hash, sanitizer, canonical path, project key, projects
directory) and §4.3 (``file_path_to_session_key``).

SPEC §4 decision 1: the key must equal the folder name the Claude CLI (JavaScript) itself creates, so
:func:`sanitize_path` and :func:`simple_hash` iterate **UTF-16 code units** as JS ``charCodeAt`` and a
non-global-unicode regex do: a character outside the BMP (an emoji) becomes two dashes, hashes as its two
surrogates, and the 200-character cut counts UTF-16 units. (The reference Python SDK iterates code points and
diverges for such paths.)
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath

from .types import SessionKey

__all__ = [
    "LONE_SURROGATE_PATTERN",
    "MAX_SANITIZED_LENGTH",
    "UUID_PATTERN",
    "canonicalize_path",
    "claude_config_dir",
    "default_projects_dir",
    "file_path_to_session_key",
    "path_has_empty_component",
    "project_key_for_directory",
    "sanitize_path",
    "simple_hash",
    "validate_project_key",
    "validate_session_key",
    "validate_uuid",
]

MAX_SANITIZED_LENGTH = 200
"""Longest sanitized key (in UTF-16 code units) kept whole; longer ones are cut and get a hash suffix."""

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
"""Any version/variant, either case (reference §3.1)."""

TRANSCRIPT_SUFFIX = ".jsonl"

LONE_SURROGATE_PATTERN = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate on its own: valid in a Python or JavaScript string, not encodable as UTF-8."""

_SEPARATORS = os.sep + (os.altsep or "")
_SEPARATOR_PATTERN = re.compile("[" + re.escape(_SEPARATORS) + "]")

_BASE36_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_INT32_MODULUS = 1 << 32
_INT32_SIGN_BIT = 1 << 31


def validate_uuid(value: str) -> str | None:
    """``value`` if it is a UUID in canonical 8-4-4-4-12 hex form (any case), else None.

    Raises ``TypeError`` naming the value when it is not a ``str`` (a ``uuid.UUID`` included: pass ``str(id)``).
    """
    if not isinstance(value, str):
        raise TypeError(f"a session or message id must be a str UUID, got {type(value).__name__} {value!r}")
    return value if UUID_PATTERN.fullmatch(value) else None


def _utf16_code_units(text: str) -> Iterator[int]:
    """The UTF-16 code units of ``text``, as JS ``charCodeAt`` sees them (lone surrogates pass through)."""
    encoded = text.encode("utf-16-le", "surrogatepass")
    for index in range(0, len(encoded), 2):
        yield encoded[index] | (encoded[index + 1] << 8)


def _is_ascii_alphanumeric(code_unit: int) -> bool:
    return code_unit < 0x80 and chr(code_unit).isalnum()


def simple_hash(text: str) -> str:
    """The Claude CLI's 32-bit string hash in base 36 (JS ``hashCode``: ``h = (h << 5) - h + unit | 0``).

    Iterates UTF-16 code units; returns ``abs`` of the signed 32-bit value, ``"0"`` for the empty string.
    """
    value = 0
    for unit in _utf16_code_units(text):
        value = ((value << 5) - value + unit) % _INT32_MODULUS
    if value >= _INT32_SIGN_BIT:
        value -= _INT32_MODULUS
    return _to_base36(abs(value))


def _to_base36(number: int) -> str:
    digits: list[str] = []
    while True:
        number, remainder = divmod(number, 36)
        digits.append(_BASE36_DIGITS[remainder])
        if number == 0:
            return "".join(reversed(digits))


def sanitize_path(name: str) -> str:
    """``name`` with every UTF-16 code unit outside ``[a-zA-Z0-9]`` replaced by ``-``.

    Results longer than :data:`MAX_SANITIZED_LENGTH` are cut to it and get ``"-" + simple_hash(name)``
    (the hash of the unsanitized input).
    """
    sanitized = "".join(chr(unit) if _is_ascii_alphanumeric(unit) else "-" for unit in _utf16_code_units(name))
    if len(sanitized) <= MAX_SANITIZED_LENGTH:
        return sanitized
    return f"{sanitized[:MAX_SANITIZED_LENGTH]}-{simple_hash(name)}"


def canonicalize_path(directory: str) -> str:
    """NFC of the absolute, symlink-resolved ``directory``; NFC of the input when resolving fails."""
    try:
        return unicodedata.normalize("NFC", os.path.realpath(directory))
    except OSError:
        return unicodedata.normalize("NFC", directory)


def checked_path(value: object, name: str, none_means: str = "") -> str:
    """``value`` as a str path, or ``TypeError`` naming ``name`` and the value (a bytes path, say, would only
    fail later, deep inside ``os.path`` or ``unicodedata``, with a message about neither)."""
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(path, str):
        fix = "; decode it with os.fsdecode()" if isinstance(path, bytes) else ""
        raise TypeError(
            f"{name} must be a str or os.PathLike path of str{none_means}, got {type(value).__name__} {value!r}{fix}"
        )
    return path


def checked_directory(directory: object) -> str | None:
    """``directory`` as a str path (None, the cwd, stays None), or ``TypeError`` naming it."""
    return None if directory is None else checked_path(directory, "directory", " (or None for the cwd)")


def project_key_for_directory(directory: str | os.PathLike[str] | None = None) -> str:
    """The default ``project_key`` for a working directory (the process cwd when None).

    The folder name the Claude CLI uses under ``projects/``: :func:`sanitize_path` of the canonical path.
    """
    return sanitize_path(canonicalize_path(checked_directory(directory) or "."))


def claude_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Claude config directory: ``CLAUDE_CONFIG_DIR`` (from ``env``, then the process) or ``~/.claude``.

    Empty values are ignored; the result is NFC-normalized.
    """
    for source in (env or {}, os.environ):
        configured = source.get("CLAUDE_CONFIG_DIR")
        if configured:
            return Path(unicodedata.normalize("NFC", configured))
    return Path(unicodedata.normalize("NFC", str(Path.home() / ".claude")))


def default_projects_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the Claude CLI writes transcripts: ``<claude_config_dir(env)>/projects`` (reference §3.7).

    Pass the environment given to the CLI subprocess as ``env`` so both resolve the same directory.
    """
    return claude_config_dir(env) / "projects"


def file_path_to_session_key(
    file_path: str | os.PathLike[str], projects_dir: str | os.PathLike[str]
) -> SessionKey | None:
    """The store key of a transcript file under ``projects_dir``, or None if it is not a transcript path.

    - ``<projects>/<project>/<session>.jsonl`` -> main transcript (the session id is not UUID-checked).
    - ``<projects>/<project>/<session>/<a>/.../<name>[.jsonl]`` -> ``subpath`` ``"<a>/.../<name>"``, always
      ``/``-joined, ``.jsonl`` stripped from the last part.
    - Anything else (outside ``projects_dir``, 1 or 3 parts, 2 parts without ``.jsonl``) -> None.
    - A ``file_path`` with an empty component (``projects//x.jsonl``, a trailing separator) -> None: the CLI never
      writes one, and normalizing it away would key it as another file (``a//b`` as ``a/b``, ``agent-1/`` as
      ``agent-1``; the SDK's PR #1070). :func:`path_has_empty_component` tells a caller why it got None.
    """
    file_path, projects_dir = checked_path(file_path, "file_path"), checked_path(projects_dir, "projects_dir")
    if path_has_empty_component(file_path):
        return None
    try:
        relative = os.path.relpath(file_path, projects_dir)
    except ValueError:  # different drives on Windows
        return None
    if os.path.isabs(relative):
        return None
    parts = PurePath(relative).parts
    if not parts or parts[0] == os.pardir or len(parts) < 2:
        return None
    project_key, second = parts[0], parts[1]
    if len(parts) == 2:
        if not second.endswith(TRANSCRIPT_SUFFIX):
            return None
        return {"project_key": project_key, "session_id": second[: -len(TRANSCRIPT_SUFFIX)]}
    if len(parts) == 3:
        return None
    tail = list(parts[2:])
    if tail[-1].endswith(TRANSCRIPT_SUFFIX):
        tail[-1] = tail[-1][: -len(TRANSCRIPT_SUFFIX)]
    return {"project_key": project_key, "session_id": second, "subpath": "/".join(tail)}


def path_has_empty_component(path: str) -> bool:
    """Whether ``path`` has an empty component below its root: two separators in a row (``projects//x.jsonl``) or
    a trailing one (``.../agent-1/``). The leading separators of the root (``/``, ``//`` or a UNC
    ``\\\\server\\share``) do not count."""
    _drive, rest = os.path.splitdrive(path)
    body = rest.lstrip(_SEPARATORS)
    return bool(body) and "" in _SEPARATOR_PATTERN.split(body)


def validate_session_key(key: SessionKey) -> None:
    """Reject a key a store must not accept, before the store does anything.

    ``project_key`` and ``session_id`` must be strings, and ``subpath`` a string when present (``None`` counts
    as absent: the main transcript). SPEC §4 decision 2 makes ``subpath == ""`` invalid everywhere. No part may
    hold a NUL character or a lone surrogate (PostgreSQL and Redis keys are valid UTF-8 text without NUL, so
    every adapter refuses them alike). Raises ``TypeError`` for a wrong type and ``ValueError`` otherwise,
    naming the key and the fix.
    """
    if not isinstance(key, dict):
        raise TypeError(
            f"a session key must be a dict with project_key and session_id (and subpath for a subagent "
            f"transcript), got {type(key).__name__} {key!r}"
        )
    subpath = key.get("subpath")
    for part in ("project_key", "session_id", "subpath"):
        if part != "subpath" or subpath is not None:
            _check_key_part(part, key.get(part), key)
    if subpath is not None and not subpath:
        raise ValueError(
            f"subpath must be non-empty (got {subpath!r} for session {key.get('session_id')!r} in project "
            f"{key.get('project_key')!r}); omit the subpath field for the main transcript"
        )


def validate_project_key(project_key: str) -> None:
    """Reject a ``project_key`` (of ``list_sessions`` and ``list_session_summaries``) as
    :func:`validate_session_key` would."""
    _check_key_part("project_key", project_key, None)


def _check_key_part(part: str, value: object, key: object) -> None:
    where = f" in {key!r}" if key is not None else ""
    if not isinstance(value, str):
        found = "missing" if isinstance(key, dict) and part not in key else f"{type(value).__name__} {value!r}"
        raise TypeError(f"session key {part} must be a str, got {found}{where}")
    if "\x00" in value or LONE_SURROGATE_PATTERN.search(value):
        raise ValueError(
            f"session key {part} {value!r} holds a NUL character or a lone surrogate, which no store can keep as "
            "a key; use printable text (project_key_for_directory() gives a safe project key)"
        )
