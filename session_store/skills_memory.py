"""Skills and project memory on resume: carried into the temp config dir, and memory brought back afterwards.

A resumed Claude CLI runs with ``CLAUDE_CONFIG_DIR`` pointed at a fresh temp dir (:mod:`session_store.resume`), so
without help it sees none of the user's skills (``<config>/skills/``) and writes the project's auto memory
(``<config>/projects/<project_key>/memory/``) into a folder that is removed when the session ends. The SDK's
PR #1029 asks for both to be carried over; this module does it, for the SDK layer (its default seeding) and for the
command line (``session-store resume --into DIR --with-skills --with-memory``, then ``session-store memory-sync``).

- :func:`seed_skills_and_memory` copies ``skills/`` and the project's ``memory/`` from the user's config dir into
  the temp dir. Folders are created 0o700 and files 0o600 (never more open than the user's own). **A symbolic link
  is never followed**: not the folders themselves, not an entry inside (a link to a skill kept elsewhere, which
  could point anywhere, is skipped with a warning: copy that skill in instead), and each file is opened with
  ``O_NOFOLLOW`` so a file swapped for a link meanwhile is not read either. FIFOs, sockets and devices are
  skipped. What was seeded into ``memory/`` is recorded (a SHA-256 per file) in :data:`SEED_RECORD` at the root
  of the temp dir.
- :func:`sync_memory` brings the memory files of a resumed config dir back into the user's config dir. A file
  the session did not change (same content as seeded) is left alone. A new file is copied. A file the session
  changed replaces the user's only when the user's is still what was seeded; a **user's file that changed too**
  (another session wrote it meanwhile), or that cannot be compared (no record), is a *conflict*: never overwritten
  silently. With ``on_conflict="refuse"`` (the default) it is left as it is and reported; with ``"backup"`` the
  user's file is first renamed ``<name>.bak-<UTC time>`` (never overwriting an existing backup) and the resumed
  one takes its place. Every file is written to a temp file in the same folder and renamed over the target
  (``os.replace`` replaces a link rather than writing through it), 0o600. A file deleted during the session is
  not deleted in the user's config dir.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "MEMORY_DIR",
    "SEED_RECORD",
    "SKILLS_DIR",
    "MemorySyncReport",
    "SeedReport",
    "memory_dir",
    "seed_skills_and_memory",
    "sync_memory",
]

logger = logging.getLogger(__name__)

SKILLS_DIR = "skills"
"""The user's skills, ``<config>/skills/<name>/SKILL.md``."""

MEMORY_DIR = "memory"
"""The project's auto memory, ``<config>/projects/<project_key>/memory/``."""

SEED_RECORD = ".session-store-seed.json"
"""At the root of a seeded config dir: the project key and the SHA-256 of each memory file as seeded."""

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)

OnConflict = Literal["refuse", "backup"]


def memory_dir(config_dir: str | os.PathLike[str], project_key: str) -> Path:
    """``<config_dir>/projects/<project_key>/memory``."""
    return Path(config_dir) / "projects" / project_key / MEMORY_DIR


@dataclass
class SeedReport:
    """What :func:`seed_skills_and_memory` copied (relative paths under the config dir) and what it skipped."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<path>: <why>"


def seed_skills_and_memory(
    source_config_dir: str | os.PathLike[str],
    target_config_dir: str | os.PathLike[str],
    project_key: str,
    *,
    skills: bool = True,
    memory: bool = True,
) -> SeedReport:
    """Blocking: copy ``skills/`` and ``projects/<project_key>/memory/`` of ``source_config_dir`` into
    ``target_config_dir`` (see the module docstring: no link followed, 0o700/0o600), and write
    :data:`SEED_RECORD` there when memory files were copied. A missing source folder is fine; anything unreadable is skipped with a warning.
    Target files must not exist yet (``O_EXCL``): seed a fresh config dir."""
    _check_project_key(project_key)
    source, target = Path(source_config_dir), Path(target_config_dir)
    report = SeedReport()
    if skills:
        _copy_tree(source / SKILLS_DIR, target, Path(SKILLS_DIR), report)
    seeded: dict[str, str] = {}
    if memory:
        relative = Path("projects", project_key, MEMORY_DIR)
        _copy_tree(source / relative, target, relative, report, hashes=seeded)
    if seeded:  # without memory files to compare against, sync_memory needs no record
        record = {"version": 1, "project_key": project_key, "source_config_dir": str(source), "memory": seeded}
        _write_new_file(target / SEED_RECORD, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return report


def _check_project_key(project_key: object) -> None:
    if not isinstance(project_key, str) or not project_key or project_key in (".", "..") or "\x00" in project_key:
        raise ValueError(f"project_key must be one folder name, got {project_key!r}; see project_key_for_directory()")
    if "/" in project_key or "\\" in project_key:
        raise ValueError(f"project_key must be one folder name, got {project_key!r}; see project_key_for_directory()")


def _skip(report: SeedReport, path: Path, why: str) -> None:
    logger.warning("[SessionStore] resume: not carrying %s (%s)", path, why)
    report.skipped.append(f"{path}: {why}")


def _copy_tree(
    source: Path, target_root: Path, relative: Path, report: SeedReport, hashes: dict[str, str] | None = None
) -> None:
    """Copy the folder ``source`` to ``target_root / relative``, without following any link (iteratively: a
    folder nested deeper than Python's recursion limit is copied too)."""
    try:
        mode = os.lstat(source).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        _skip(report, source, str(error))
        return
    if stat.S_ISLNK(mode):
        _skip(report, source, "a symbolic link: links are not followed")
        return
    if not stat.S_ISDIR(mode):
        _skip(report, source, "not a folder")
        return
    pending = [(source, relative)]
    while pending:
        folder, folder_relative = pending.pop()
        try:
            _make_private_dirs(target_root, folder_relative)
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name, reverse=True)
        except OSError as error:
            _skip(report, folder, str(error))
            continue
        for entry in entries:
            entry_path = Path(entry.path)
            try:
                if entry.is_symlink():
                    _skip(report, entry_path, "a symbolic link: links are not followed")
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((entry_path, folder_relative / entry.name))
                elif entry.is_file(follow_symlinks=False):
                    content = _read_regular_file(entry_path)
                    _write_new_file(target_root / folder_relative / entry.name, content)
                    name = (folder_relative / entry.name).as_posix()
                    report.copied.append(name)
                    if hashes is not None:
                        hashes[_memory_relative(name)] = _digest(content)
                else:
                    _skip(report, entry_path, "not a regular file or folder")
            except OSError as error:
                _skip(report, entry_path, str(error))


def _memory_relative(name: str) -> str:
    """``a/b.md`` of ``projects/<key>/memory/a/b.md``."""
    return name.split(f"/{MEMORY_DIR}/", 1)[1]


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing a link (``O_NOFOLLOW``) or anything but a regular file (``OSError``)."""
    descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY | getattr(os, "O_NONBLOCK", 0))
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return file.read()


def _make_private_dirs(root: Path, relative: Path) -> None:
    current = root
    for part in relative.parts:
        current = current / part
        with suppress(FileExistsError):
            current.mkdir(mode=_DIR_MODE)
            with suppress(OSError):
                current.chmod(_DIR_MODE)  # mkdir's mode is filtered by the umask
        if current.is_symlink() or not current.is_dir():
            raise OSError(f"{current} is not a folder (a link or a file is in the way)")


def _write_new_file(path: Path, content: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
    with open(os.open(path, flags, _FILE_MODE), "wb") as file:
        file.write(content)
    with suppress(OSError):
        path.chmod(_FILE_MODE)


# --- bringing memory back -------------------------------------------------------------------------------------


@dataclass
class MemorySyncReport:
    """What :func:`sync_memory` did, each a list of paths relative to the memory folder."""

    copied: list[str] = field(default_factory=list)  # new in the session: written
    updated: list[str] = field(default_factory=list)  # changed in the session, the user's was as seeded
    unchanged: list[str] = field(default_factory=list)  # same content on both sides, or not changed in the session
    conflicts: list[str] = field(default_factory=list)  # changed on both sides (or no record): left as it is
    backups: list[str] = field(default_factory=list)  # conflicts resolved with on_conflict="backup": the backup
    skipped: list[str] = field(default_factory=list)  # "<path>: <why>"

    def as_dict(self) -> dict[str, Any]:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}


def _read_record(config_dir: Path, project_key: str) -> dict[str, str] | None:
    """The seeded memory hashes of ``config_dir`` for ``project_key``; None without a usable record."""
    try:
        record = json.loads(_read_regular_file(config_dir / SEED_RECORD).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("project_key") != project_key:
        return None
    hashes = record.get("memory")
    if not isinstance(hashes, dict):
        return None
    return {name: value for name, value in hashes.items() if isinstance(name, str) and isinstance(value, str)}


def sync_memory(
    resumed_config_dir: str | os.PathLike[str],
    target_config_dir: str | os.PathLike[str],
    project_key: str,
    *,
    on_conflict: OnConflict = "refuse",
) -> MemorySyncReport:
    """Blocking: bring the memory files of ``resumed_config_dir`` (the config dir a resumed session ran with) back
    into ``target_config_dir`` (the user's), for the project ``project_key``. See the module docstring for the
    rules; ``on_conflict`` is ``"refuse"`` or ``"backup"``. Raises ``ValueError`` for a bad ``project_key`` or
    ``on_conflict``; files that cannot be read or written are reported in ``skipped``."""
    _check_project_key(project_key)
    if on_conflict not in ("refuse", "backup"):
        raise ValueError(f"on_conflict must be 'refuse' or 'backup', got {on_conflict!r}")
    resumed = Path(resumed_config_dir)
    source = memory_dir(resumed, project_key)
    target = memory_dir(target_config_dir, project_key)
    seeded = _read_record(resumed, project_key)
    report = MemorySyncReport()
    for name, content in _memory_files(source, report):
        try:
            _sync_one(name, content, target, seeded, on_conflict, report)
        except OSError as error:
            logger.warning("[SessionStore] memory sync: not writing %s (%s)", target / name, error)
            report.skipped.append(f"{name}: {error}")
    return report


def _memory_files(source: Path, report: MemorySyncReport) -> list[tuple[str, bytes]]:
    """``(relative name, content)`` of every regular file below ``source``, no link followed."""
    found: list[tuple[str, bytes]] = []
    try:
        if stat.S_ISLNK(os.lstat(source).st_mode):
            report.skipped.append(f".: {source} is a symbolic link, not followed")
            return found
    except FileNotFoundError:
        return found
    pending = [(source, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            report.skipped.append(f"{prefix or '.'}: {error}")
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                if entry.is_symlink():
                    report.skipped.append(f"{name}: a symbolic link, not followed")
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), name + "/"))
                elif entry.is_file(follow_symlinks=False):
                    found.append((name, _read_regular_file(Path(entry.path))))
                else:
                    report.skipped.append(f"{name}: not a regular file")
            except OSError as error:
                report.skipped.append(f"{name}: {error}")
    return sorted(found)


def _sync_one(
    name: str,
    content: bytes,
    target: Path,
    seeded: dict[str, str] | None,
    on_conflict: OnConflict,
    report: MemorySyncReport,
) -> None:
    digest = _digest(content)
    seeded_digest = seeded.get(name) if seeded is not None else None
    destination = target / name
    _refuse_linked_folders(target, name)
    try:
        mode: int | None = os.lstat(destination).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None:
        if seeded_digest == digest:
            report.unchanged.append(name)  # not changed in the session; the user removed it since: keep it removed
            return
        _make_missing_dirs(target)  # the user's own folders, as they are set up (links too)
        _make_private_dirs(target, Path(*Path(name).parts[:-1]))  # below it, no link is followed
        _replace_file(destination, content)
        report.copied.append(name)
        return
    if not stat.S_ISREG(mode):
        report.skipped.append(f"{name}: the file in the config dir is not a regular file (a link?), left alone")
        return
    if seeded_digest == digest:
        report.unchanged.append(name)  # the session did not change it: whatever the user's holds is newer
        return
    local = _read_regular_file(destination)
    if local == content:
        report.unchanged.append(name)
        return
    if seeded_digest is not None and _digest(local) == seeded_digest:
        _replace_file(destination, content)
        report.updated.append(name)
        return
    if on_conflict == "refuse":
        logger.warning("[SessionStore] memory sync: %s changed in both places; left as it is", destination)
        report.conflicts.append(name)
        return
    backup = _backup_name(destination)
    os.rename(destination, backup)  # the same folder: atomic, and never over an existing backup (checked)
    _replace_file(destination, content)
    report.conflicts.append(name)
    report.backups.append((Path(name).parent / backup.name).as_posix())


def _make_missing_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0o700 (``os.makedirs`` gives the parents the umask's)."""
    missing: list[Path] = []
    current = folder
    while not os.path.isdir(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with suppress(FileExistsError):
            path.mkdir(mode=_DIR_MODE)
            with suppress(OSError):
                path.chmod(_DIR_MODE)


def _refuse_linked_folders(target: Path, name: str) -> None:
    """``OSError`` when a folder between ``target`` and ``target / name`` is a link (or a file)."""
    current = target
    for part in Path(name).parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            raise OSError(f"{current} is not a folder (a link or a file is in the way)")


def _backup_name(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for attempt in range(1000):
        candidate = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{attempt}" if attempt else ""))
        if not os.path.lexists(candidate):
            return candidate
    raise OSError(f"no free backup name next to {path}")


def _replace_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a temp file beside ``path`` (0o600), flush it to disk, rename it over ``path``."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
