"""``resume SESSION --into DIR``: materialize a stored session and place its files under DIR, safely.

``(cd PROJECT && CLAUDE_CONFIG_DIR=DIR claude --resume SESSION)`` then continues the session; the command is
printed with absolute, shell-quoted paths, so it works from any directory.

The session is first written by :func:`~session_store.resume.materialize_resume_session` into its private temp
dir; its files are then placed under DIR the way the library writer writes (docs/behaviour.md, "Trust promises:
resume --into"):

- nothing inside DIR is followed: DIR itself, every folder below it and every file written are opened relative
  to their parent's descriptor with ``O_NOFOLLOW``; a symbolic link anywhere there is refused, named, and
  nothing is written (the folders *above* DIR are the user's path and are followed, like ``cd`` does);
- new folders are created 0700 and new files 0600 (``O_CREAT|O_EXCL`` with that mode, so no wider window);
  existing folders are never chmod-ed or re-stamped;
- every file is written to a hidden temp name in its own folder, fsync-ed, and only then linked or renamed into
  place; a failure (a full disk included) removes every temp file and every folder this run created, and says
  which path failed and how much free space the session needs;
- an existing file that differs from the store's is refused (naming it and counting the lines only it has)
  unless ``--force``, which keeps the old file as ``NAME.bak`` (``NAME.2.bak``, ... : never overwritten) beside
  the new one; an identical file (or one holding the same JSON lines) is left as it is.

Anything the materialization leaves out (a subagent transcript with an unsafe subpath, one whose name cannot be
a file here) is reported on stderr without ``--verbose`` and makes the exit status :data:`EXIT_INCOMPLETE`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shlex
import stat
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import compat

from ..keys import canonicalize_path
from ..resume import DEFAULT_LOAD_TIMEOUT_MS, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, materialize_resume_session
from ..types import SessionStore
from .output import Console, Report
from .running import EXIT_USAGE, CliError
from .scope import Scope, require_session_id, session_not_found

__all__ = ["EXIT_INCOMPLETE", "resume_command"]

EXIT_INCOMPLETE = 3
"""Exit status of a ``resume`` that wrote the session but left part of it out (each part is named on stderr)."""

_RESUME_LOGGER = "session_store.resume"
"""The library logger whose warnings name what a materialization skipped."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_OPEN_DIR = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EACCES, errno.EMLINK, errno.EXDEV, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)}
    | {getattr(errno, "EOPNOTSUPP", -1)}
)
_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


async def resume_command(
    store: SessionStore,
    scope: Scope,
    session_id: str,
    into: str | os.PathLike[str],
    load_timeout_ms: float = DEFAULT_LOAD_TIMEOUT_MS,
    *,
    force: bool = False,
    console: Console | None = None,
) -> Report:
    """Write ``session_id`` of ``scope`` under ``into`` (see the module docstring); the report lists each file."""
    require_session_id(session_id)
    target = _target_directory(into)
    with _recording_left_out() as left_out:
        try:
            materialized = await materialize_resume_session(
                store, resume=session_id, cwd=scope.directory, load_timeout_ms=load_timeout_ms
            )
        except OSError as error:  # the private temp dir (removed again by the library) could not be written
            where = _shown(error.filename if isinstance(error.filename, str) else tempfile.gettempdir())
            fix = "point TMPDIR at a folder with space" if error.errno in _NO_SPACE else "check TMPDIR"
            raise CliError(
                f"cannot write the session to {where} before placing it in --into: {error.strerror or error}; "
                f"{fix}; nothing was written to --into"
            ) from None
    if materialized is None:
        raise session_not_found(session_id, scope)
    try:
        placed = await compat.run_sync(_place_tree, materialized.config_dir, target, force)
    finally:
        await materialized.cleanup()
    project_dir = canonicalize_path(scope.directory if scope.directory is not None else os.getcwd())
    command = (
        f"(cd {shlex.quote(project_dir)} && CLAUDE_CONFIG_DIR={shlex.quote(target)} "
        f"claude --resume {materialized.resume_session_id})"
    )
    lines = [f"materialized session {materialized.resume_session_id} into {_shown(target)}:"]
    for name in placed.files:
        lines.append(f"  {_shown(name)}{placed.notes.get(name, '')}")
    if left_out:
        lines.append("left out (the resumed session is incomplete):")
        lines.extend(f"  {_shown(message)}" for message in left_out)
    lines += ["continue it with:", f"  {_shown(command)}"]
    warn = (console or Console()).warn
    for message in left_out:
        warn(f"left out of the resumed session: {_shown(message)}")
    if left_out:
        warn(f"the session in {_shown(target)} is incomplete ({len(left_out)} part(s) left out); exit status 3")
    data = {
        "session_id": materialized.resume_session_id,
        "project_key": scope.project_key,
        "into": target,
        "files": placed.files,
        "written": placed.written,
        "unchanged": placed.unchanged,
        "replaced": [{"file": name, "backup": backup} for name, backup in placed.replaced],
        "left_out": left_out,
        "complete": not left_out,
        "command": command,
    }
    return Report(data, "\n".join(lines), EXIT_INCOMPLETE if left_out else 0)


def _target_directory(into: str | os.PathLike[str]) -> str:
    """``into`` as an absolute path (its parents taken as typed); ``''`` is a usage error, never ``.``."""
    text = os.fspath(into)
    if not isinstance(text, str) or not text:
        raise CliError(
            "--into '' names no folder (an unset variable?); give the config folder to write, e.g. "
            "--into ./resumed (use --into . for the current directory)",
            EXIT_USAGE,
        )
    if "\x00" in text:
        raise CliError(f"--into {_shown(text)} contains a NUL character; give a folder path", EXIT_USAGE)
    if os.open not in os.supports_dir_fd or not _NOFOLLOW:
        raise CliError("resume --into needs a POSIX system (openat with O_NOFOLLOW) to write safely")
    return os.path.abspath(text)


def _shown(text: str) -> str:
    """``text`` with C0/C1 control characters (ESC included) made visible as ``\\xNN``."""
    return "".join(f"\\x{ord(char):02x}" if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 else char for char in text)


@contextmanager
def _recording_left_out() -> Iterator[list[str]]:
    """Collect the warnings the materialization logs for what it skips, whatever ``--verbose`` says."""
    messages: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            messages.append(message.removeprefix("[SessionStore] "))

    logger = logging.getLogger(_RESUME_LOGGER)
    recorder = Recorder(logging.WARNING)
    level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    logger.addHandler(recorder)
    try:
        yield messages
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)


# --- placing the files (blocking, in a worker thread) ----------------------------------------------------------


@dataclass
class _File:
    """One file of the materialized session: its path below the config folder and its bytes."""

    parts: tuple[str, ...]
    data: bytes
    action: str = "create"  # "create", "replace" or "same"
    difference: str = ""

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class _Placed:
    files: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def _place_tree(source: Path, target: str, force: bool) -> _Placed:
    files = _read_source(source)
    _plan(target, files)
    conflicts = [file for file in files if file.action == "replace"]
    if conflicts and not force:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more file(s))" if len(conflicts) > 1 else ""
        raise CliError(
            f"refusing to replace {_shown(os.path.join(target, first.name))}: it differs from the stored session "
            f"({first.difference}){more}; nothing was written; rerun with --force to replace it (the old file is "
            "kept beside it as NAME.bak), or choose another --into"
        )
    placed = _Placed(files=[file.name for file in files])
    backups = _write(target, files)
    for file in files:
        if file.action == "same":
            placed.unchanged.append(file.name)
            placed.notes[file.name] = "  (already there, unchanged)"
        else:
            placed.written.append(file.name)
    for file in conflicts:
        backup = "/".join((*file.parts[:-1], backups[file.name]))
        placed.replaced.append((file.name, backup))
        placed.notes[file.name] = f"  (replaced; the old file is kept as {backup})"
    return placed


def _read_source(source: Path) -> list[_File]:
    """Every regular file of the private temp dir, sorted by path."""
    files: list[_File] = []
    for directory, folders, names in os.walk(source):
        folders.sort()
        relative = Path(directory).relative_to(source).parts
        for name in sorted(names):
            files.append(_File((*relative, name), (Path(directory) / name).read_bytes()))
    files.sort(key=lambda file: file.name)
    return files


class _Folders:
    """Descriptors of DIR and the folders below it, opened without following links, closed on exit."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.fds: dict[tuple[str, ...], int] = {}
        self.created: list[tuple[tuple[str, ...] | None, str]] = []  # (parent parts, name) or (None, abs path)

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def shown(self, parts: tuple[str, ...]) -> str:
        return _shown(os.path.join(self.target, *parts))

    def root(self, create: bool) -> int | None:
        """DIR's descriptor (created 0700 with its missing parents when ``create``); None when it is missing."""
        if () in self.fds:
            return self.fds[()]
        parent, name = os.path.split(self.target)
        if not name:  # DIR is "/"
            self.fds[()] = os.open(parent, _OPEN_DIR)
            return self.fds[()]
        try:
            parent_fd = self._open_parents(parent, create)
        except FileNotFoundError:
            parent_fd = None
        except OSError as error:
            raise CliError(
                f"cannot open {_shown(parent)}, the folder --into {_shown(self.target)} goes in: "
                f"{error.strerror or error}; choose another --into"
            ) from None
        if parent_fd is None:
            return None
        try:
            fd = self._open_or_create(parent_fd, name, create, self.target)
        finally:
            os.close(parent_fd)
        if fd is not None:
            self.fds[()] = fd
        return fd

    def _open_parents(self, parent: str, create: bool) -> int | None:
        """The folder above DIR, following links as typed; its missing folders created 0700 when ``create``."""
        with suppress(FileNotFoundError):
            return os.open(parent, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        if not create:
            return None
        grand, name = os.path.split(parent)
        grand_fd = self._open_parents(grand, create)
        if grand_fd is None:
            return None
        try:
            if self._make_folder(grand_fd, name, parent):
                self.created.append((None, parent))
            return os.open(name, _OPEN_DIR, dir_fd=grand_fd)
        finally:
            os.close(grand_fd)

    def folder(self, parts: tuple[str, ...], create: bool) -> int | None:
        """The descriptor of ``DIR/<parts>``; None when missing (and not ``create``)."""
        if not parts:
            return self.root(create)
        if parts in self.fds:
            return self.fds[parts]
        parent_fd = self.folder(parts[:-1], create)
        if parent_fd is None:
            return None
        fd = self._open_or_create(parent_fd, parts[-1], create, os.path.join(self.target, *parts), parts[:-1])
        if fd is not None:
            self.fds[parts] = fd
        return fd

    def _open_or_create(
        self, parent_fd: int, name: str, create: bool, path: str, parent_parts: tuple[str, ...] | None = None
    ) -> int | None:
        try:
            return os.open(name, _OPEN_DIR, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as error:
            raise _not_a_folder(parent_fd, name, path, error) from None
        if self._make_folder(parent_fd, name, path):
            self.created.append((parent_parts, name) if parent_parts is not None else (None, path))
        try:
            return os.open(name, _OPEN_DIR, dir_fd=parent_fd)
        except OSError as error:
            raise _not_a_folder(parent_fd, name, path, error) from None

    @staticmethod
    def _make_folder(parent_fd: int, name: str, path: str) -> bool:
        """mkdir 0700 (the umask can only narrow it), then exactly 0700; False when it already existed."""
        try:
            os.mkdir(name, PRIVATE_DIR_MODE, dir_fd=parent_fd)
        except FileExistsError:
            return False  # made meanwhile, or a link: opening it (O_NOFOLLOW) decides
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=parent_fd)
        except OSError as error:
            raise _not_a_folder(parent_fd, name, path, error) from None
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_DIR_MODE:
                os.fchmod(fd, PRIVATE_DIR_MODE)
        finally:
            os.close(fd)
        return True

    def remove_created(self) -> None:
        """Remove the folders this run created (deepest first), if still empty."""
        for parent_parts, name in reversed(self.created):
            with suppress(OSError):
                if parent_parts is None:
                    os.rmdir(name)  # DIR or a folder above it, by its absolute path
                    continue
                parent_fd = self.fds.get(parent_parts)
                if parent_fd is not None:
                    os.rmdir(name, dir_fd=parent_fd)


def _not_a_folder(parent_fd: int, name: str, path: str, error: OSError) -> CliError:
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return CliError(f"cannot open the folder {_shown(path)}: {error.strerror or error}; nothing was written")
    if stat.S_ISLNK(info.st_mode):
        return _link_refused(parent_fd, name, path)
    return CliError(
        f"{_shown(path)} is not a folder; resume --into needs a folder there: move it away or choose another --into"
    )


def _link_refused(parent_fd: int, name: str, path: str) -> CliError:
    try:
        points_to = f" (-> {_shown(os.readlink(name, dir_fd=parent_fd))})"
    except OSError:
        points_to = ""
    return CliError(
        f"refusing to write through the symbolic link {_shown(path)}{points_to}: resume --into follows no link "
        "in or below DIR; remove the link or choose another --into; nothing was written"
    )


def _plan(target: str, files: list[_File]) -> None:
    """Decide, reading only, what each file needs: create, same (leave it) or replace (it differs)."""
    with _Folders(target) as folders:
        for file in files:
            try:
                folder_fd = folders.folder(file.parts[:-1], create=False)
            except OSError as error:
                raise CliError(f"cannot read {folders.shown(file.parts[:-1])}: {error.strerror or error}") from None
            if folder_fd is None:
                continue
            existing = _read_existing(folder_fd, file.parts[-1], os.path.join(target, file.name))
            if existing is None:
                continue
            if existing == file.data:
                file.action = "same"
                continue
            difference = _difference(existing, file.data)
            file.action, file.difference = ("same", "") if difference is None else ("replace", difference)


def _read_existing(folder_fd: int, name: str, path: str) -> bytes | None:
    """The bytes of the regular file ``name`` (None when missing); a link or a non-file is refused."""
    try:
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise _link_refused(folder_fd, name, path)
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"{_shown(path)} exists and is not a regular file; move it away or choose another --into")
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=folder_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _link_refused(folder_fd, name, path) from None
        raise CliError(f"cannot read the existing {_shown(path)}: {error.strerror or error}") from None
    with open(fd, "rb") as file:
        return file.read()


def _canonical_lines(data: bytes) -> list[str]:
    """Each non-blank line as canonical JSON (key order and escaping do not matter), else as its text."""
    lines: list[str] = []
    for raw in data.decode("utf-8", errors="surrogateescape").splitlines():
        if not raw.strip():
            continue
        try:
            lines.append(json.dumps(json.loads(raw), sort_keys=True, ensure_ascii=False, separators=(",", ":")))
        except (ValueError, RecursionError):
            lines.append(raw)
    return lines


def _difference(existing: bytes, stored: bytes) -> str | None:
    """None when both hold the same JSON lines in the same order; else what differs, for the message."""
    local, store = _canonical_lines(existing), _canonical_lines(stored)
    if local == store:
        return None
    only_local = sum((Counter(local) - Counter(store)).values())
    only_store = sum((Counter(store) - Counter(local)).values())
    if not only_local and not only_store:
        return "the same lines in another order"
    return f"{only_local} line(s) only in this file would be lost, {only_store} line(s) only in the store"


def _write(target: str, files: list[_File]) -> dict[str, str]:
    """Write every create/replace file to a temp name, then put them in place; the backups' names by file."""
    pending = [file for file in files if file.action != "same"]
    backups: dict[str, str] = {}
    if not pending:
        return backups
    needed = sum(len(file.data) for file in pending)
    with _Folders(target) as folders:
        temps: list[tuple[int, str, _File]] = []
        current = target
        try:
            for file in pending:
                current = os.path.join(target, file.name)
                folder_fd = folders.folder(file.parts[:-1], create=True)
                assert folder_fd is not None  # created
                temp = f".{file.parts[-1][:80]}.{secrets.token_hex(6)}.tmp"  # fits where the name fits
                fd = os.open(
                    temp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                    PRIVATE_FILE_MODE,
                    dir_fd=folder_fd,
                )
                temps.append((folder_fd, temp, file))
                try:
                    if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
                        os.fchmod(fd, PRIVATE_FILE_MODE)
                    _write_all(fd, file.data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for folder_fd, temp, file in list(temps):
                current = os.path.join(target, file.name)
                if file.action == "replace":
                    backups[file.name] = _back_up(folder_fd, file.parts[-1], current)
                    os.rename(temp, file.parts[-1], src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
                else:
                    _put_new(folder_fd, temp, file.parts[-1], current)
                temps.remove((folder_fd, temp, file))
            for fd in folders.fds.values():
                with suppress(OSError):
                    os.fsync(fd)
        except BaseException as error:
            for folder_fd, temp, _file in temps:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=folder_fd)
            if not backups:
                folders.remove_created()
            if isinstance(error, OSError):
                raise _write_error(error, current, needed, folders) from None
            raise
    return backups


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _put_new(folder_fd: int, temp: str, name: str, path: str) -> None:
    """Link the temp file to ``name`` only if nothing took that name meanwhile, then drop the temp name."""
    try:
        os.link(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
    except FileExistsError:
        raise CliError(
            f"{_shown(path)} appeared while the session was being written; it was left as it is: "
            "rerun resume to compare it with the stored session"
        ) from None
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        try:  # no hard links here: check, then rename (a narrow window)
            os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            raise CliError(
                f"{_shown(path)} appeared while the session was being written; it was left as it is"
            ) from None
        os.rename(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        return
    os.unlink(temp, dir_fd=folder_fd)


def _back_up(folder_fd: int, name: str, path: str) -> str:
    """Keep the current ``name`` as ``name.bak`` (or ``name.N.bak``, never overwriting one); the name used."""
    for number in range(1, 10_000):
        backup = f"{name}.bak" if number == 1 else f"{name}.{number}.bak"
        try:
            os.link(name, backup, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
            return backup
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
        try:  # no hard links here: copy it to a new file
            old = _read_existing(folder_fd, name, path) or b""
            fd = os.open(
                backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, PRIVATE_FILE_MODE, dir_fd=folder_fd
            )
        except FileExistsError:
            continue
        try:
            _write_all(fd, old)
            os.fsync(fd)
        finally:
            os.close(fd)
        return backup
    raise CliError(f"cannot find a free backup name for {_shown(path)} ({name}.bak ... {name}.9999.bak all exist)")


def _write_error(error: OSError, path: str, needed: int, folders: _Folders) -> CliError:
    reason = error.strerror or str(error)
    if error.errno in _NO_SPACE:
        free = _free_bytes(folders)
        have = f", {free:,} bytes are free there" if free is not None else ""
        return CliError(
            f"no space left writing {_shown(path)}: the session needs {needed:,} bytes{have}; free some space or "
            f"choose another --into (nothing was left behind: no partial or temp file)"
        )
    return CliError(f"cannot write {_shown(path)}: {reason}; no partial or temp file was left behind")


def _free_bytes(folders: _Folders) -> int | None:
    for fd in folders.fds.values():
        with suppress(OSError):
            info = os.fstatvfs(fd)
            return info.f_bavail * info.f_frsize
    with suppress(OSError):
        info = os.statvfs(os.path.dirname(folders.target) or "/")
        return info.f_bavail * info.f_frsize
    return None
