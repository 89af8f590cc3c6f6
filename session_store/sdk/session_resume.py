"""The SDK's ``session_resume`` module: resume materialization with the SDK's call shapes (reference §6.8, §7).

:func:`materialize_resume_session` takes the SDK's options object and runs this project's
:func:`session_store.resume.materialize_resume_session`; :func:`build_mirror_batcher` takes
``(store, materialized, env, on_error, flush_mode)``. Options are read by attribute with the SDK's names and
defaults (``session_store``, ``resume``, ``continue_conversation``, ``cwd``, ``env``, ``load_timeout_ms``), so
``ClaudeAgentOptions`` or any object with those names works; nothing here imports the SDK.

The default ``seed_config_dir`` hook of this layer is the SDK's credential and settings seeding (reference
§7.10), :func:`seed_claude_config_dir`, run in a worker thread after the main transcript is written. Into the
temp dir, each file mode 0o600 (the dir itself is 0o700):

- ``.credentials.json`` from the caller's config dir (``env["CLAUDE_CONFIG_DIR"]``, else the process's
  ``CLAUDE_CONFIG_DIR``, else ``~/.claude``), with ``claudeAiOauth.refreshToken`` removed. On macOS, when no
  config dir, ``ANTHROPIC_API_KEY`` or ``CLAUDE_CODE_OAUTH_TOKEN`` is set, the Keychain entry
  ``Claude Code-credentials`` replaces the file's content.
- ``.claude.json``, verbatim, from ``<config dir>/.claude.json`` when a config dir is set, else
  ``~/.claude.json``.
- ``settings.json`` and ``cowork_settings.json`` from the config dir, with the top-level ``enabledPlugins`` and
  ``extraKnownMarketplaces`` and ``env.CLAUDE_CONFIG_DIR`` removed; content that is not a UTF-8 JSON object,
  or that removes nothing, is copied byte for byte.

A missing source is skipped silently; a source that is not a regular file (a directory, a FIFO: never
opened) or that cannot be read or written is skipped with a warning. None of these aborts the resume.

Beyond the SDK (its PR #1029, not shipped): the same default seeding carries the user's ``skills/`` and the
project's auto memory (``projects/<project_key>/memory/``) from that config dir into the temp dir
(:func:`session_store.skills_memory.seed_skills_and_memory`: no link followed, 0o700/0o600), so the resumed CLI
can invoke the skills and read its memory; and ``cleanup()`` first brings the memory files the session wrote
back into that config dir (:func:`session_store.skills_memory.sync_memory` with ``on_conflict="backup"``: a file
the user's side changed meanwhile is kept as ``<name>.bak-<UTC time>``, with a warning), then removes the dir.

SPEC §4 decision 3 holds here too: ``load_timeout_ms <= 0`` times out at once without calling the store.
"""

from __future__ import annotations

import copy
import dataclasses
import getpass
import json
import logging
import os
import platform
import stat
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, Literal

import compat
from session_store import resume as _resume
from session_store.batcher import MirrorErrorCallback, TranscriptMirrorBatcher
from session_store.batcher import build_mirror_batcher as _build_batcher
from session_store.keys import default_projects_dir, project_key_for_directory
from session_store.resume import DEFAULT_LOAD_TIMEOUT_MS, MaterializedResume, SeedConfigDir
from session_store.skills_memory import seed_skills_and_memory, sync_memory
from session_store.types import SessionStore, SessionStoreFlushMode

__all__ = [
    "CLAUDE_CONFIG_SEED",
    "KEYCHAIN_SERVICE_NAME",
    "RESUME_SETTINGS_STRIPPED_KEYS",
    "MaterializedResume",
    "_get_projects_dir",
    "_read_keychain_credentials",
    "_rmtree_with_retry",
    "_strip_settings_for_resume",
    "_with_timeout",
    "_write_jsonl",
    "apply_materialized_options",
    "build_mirror_batcher",
    "materialize_resume_session",
    "seed_claude_config_dir",
]

logger = logging.getLogger(__name__)

KEYCHAIN_SERVICE_NAME = "Claude Code-credentials"
"""The macOS Keychain service under which the Claude CLI keeps its OAuth credentials."""

KEYCHAIN_TIMEOUT_SECONDS = 5.0
"""Time limit of the ``security`` call that reads the Keychain."""

RESUME_SETTINGS_STRIPPED_KEYS = ("enabledPlugins", "extraKnownMarketplaces")
"""Top-level settings keys removed on resume: plugin declarations would reconcile against the empty temp dir."""

CLAUDE_CONFIG_SEED: Literal["claude"] = "claude"
"""The default ``seed_config_dir`` of :func:`materialize_resume_session`: :func:`seed_claude_config_dir`."""

_PRIVATE_FILE_MODE = 0o600

_with_timeout = _resume.with_timeout
_rmtree_with_retry = _resume.remove_tree


def _get_projects_dir(env_override: Mapping[str, str] | None = None) -> Path:
    """``<CLAUDE_CONFIG_DIR>/projects``, the variable read from ``env_override`` then the process (§3.7)."""
    return default_projects_dir(env_override)


def _write_jsonl(path: Path, entries: list[Any]) -> None:
    """Write ``entries`` as compact JSON lines (each ending in a newline) to ``path``, mode 0o600; parents made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for entry in entries:
            file.write(json.dumps(entry, separators=(",", ":")) + "\n")
    with suppress(OSError):
        path.chmod(_PRIVATE_FILE_MODE)


def _option(options: object, name: str, default: Any) -> Any:
    return getattr(options, name, default)


async def materialize_resume_session(
    options: object,
    *,
    seed_config_dir: SeedConfigDir | Literal["claude"] | None = CLAUDE_CONFIG_SEED,
) -> MaterializedResume | None:
    """Load the session ``options`` asks to resume from ``options.session_store`` into a temp config dir.

    ``options.resume`` wins over ``options.continue_conversation``; the project is that of ``options.cwd``.
    Returns None when there is nothing to materialize (no store, neither option, a non-UUID ``resume``, an
    empty session, no candidate to continue). ``seed_config_dir``: ``"claude"`` (the default) copies the
    caller's Claude credentials and settings found through ``options.env`` (:func:`seed_claude_config_dir`);
    a callable replaces that; None seeds nothing. Errors are those of
    :func:`session_store.resume.materialize_resume_session` (``RuntimeError`` for a failed or timed-out store
    call); the temp dir never outlives a failure.
    """
    env: Mapping[str, str] = _option(options, "env", None) or {}
    seed: SeedConfigDir | None
    carried: list[tuple[Path, str]] = []  # (the user's config dir, project key) once skills and memory are seeded
    if seed_config_dir == CLAUDE_CONFIG_SEED:
        seed = partial(_seed_in_worker_thread, env=dict(env), cwd=_option(options, "cwd", None), carried=carried)
    elif seed_config_dir is None or callable(seed_config_dir):
        seed = seed_config_dir
    else:
        raise ValueError(
            f"seed_config_dir must be 'claude', a callable taking the config dir, or None; got {seed_config_dir!r}"
        )
    store: SessionStore | None = _option(options, "session_store", None)
    materialized = await _resume.materialize_resume_session(
        store,
        resume=_option(options, "resume", None),
        continue_conversation=bool(_option(options, "continue_conversation", False)),
        cwd=_option(options, "cwd", None),
        load_timeout_ms=_option(options, "load_timeout_ms", DEFAULT_LOAD_TIMEOUT_MS),
        seed_config_dir=seed,
    )
    if materialized is not None and carried:
        materialized.cleanup = partial(_sync_memory_then, materialized.config_dir, *carried[0], materialized.cleanup)
    return materialized


async def _seed_in_worker_thread(
    config_dir: Path, *, env: Mapping[str, str], cwd: object, carried: list[tuple[Path, str]]
) -> None:
    source_dir = _caller_config_dir(env)
    project_key = project_key_for_directory(cwd)  # type: ignore[arg-type]  # checked by the resume already

    def seed() -> None:
        seed_claude_config_dir(config_dir, env)
        seed_skills_and_memory(source_dir, config_dir, project_key)

    await compat.run_sync(seed)
    carried.append((source_dir, project_key))


async def _sync_memory_then(
    config_dir: Path, user_config_dir: Path, project_key: str, remove: Callable[[], Awaitable[None]]
) -> None:
    """The ``cleanup`` of a resume seeded with skills and memory: bring the session's memory back into the
    user's config dir (shielded from cancellation, never raising), then remove the temp dir."""

    async def bring_back() -> None:
        try:
            report = await compat.run_sync(
                partial(sync_memory, config_dir, user_config_dir, project_key, on_conflict="backup")
            )
        except Exception as error:
            logger.warning("[SessionStore] resume: could not bring the session's memory back: %s", error)
            return
        if report.backups or report.skipped:
            logger.warning(
                "[SessionStore] resume: memory brought back into %s; changed on both sides, the other version kept "
                "as: %s; not brought back: %s",
                user_config_dir,
                ", ".join(report.backups) or "none",
                ", ".join(report.skipped) or "none",
            )

    try:
        await compat.shield(bring_back)  # nothing to bring back after a first cleanup() removed the dir
    finally:
        await remove()


def apply_materialized_options(options: Any, materialized: MaterializedResume) -> Any:
    """A copy of ``options`` pointed at ``materialized``; the original is left untouched (reference §7.2).

    The copy has ``env`` plus ``CLAUDE_CONFIG_DIR=<config_dir>``, ``resume=<resume_session_id>`` and
    ``continue_conversation=False``. A dataclass is copied with ``dataclasses.replace``, anything else with
    ``copy.copy`` and attribute assignment.
    """
    changes = {
        "env": {**(_option(options, "env", None) or {}), "CLAUDE_CONFIG_DIR": str(materialized.config_dir)},
        "resume": materialized.resume_session_id,
        "continue_conversation": False,
    }
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dataclasses.replace(options, **changes)
    updated = copy.copy(options)
    for name, value in changes.items():
        setattr(updated, name, value)
    return updated


def build_mirror_batcher(
    store: SessionStore,
    materialized: MaterializedResume | None,
    env: Mapping[str, str] | None,
    on_error: MirrorErrorCallback,
    flush_mode: SessionStoreFlushMode = "batched",
) -> TranscriptMirrorBatcher:
    """The mirror batcher of one CLI session, with the SDK's arguments (reference §6.8).

    Frames are mapped from ``materialized.projects_dir`` after a store-backed resume, otherwise from the
    projects dir of ``env``'s ``CLAUDE_CONFIG_DIR`` (then the process's, then ``~/.claude``). ``flush_mode``
    as in :func:`session_store.batcher.build_mirror_batcher` (an unknown mode raises ``ValueError``).
    """
    projects_dir = materialized.projects_dir if materialized is not None else _get_projects_dir(env)
    return _build_batcher(store, projects_dir, on_error, flush_mode)


# --- the Claude CLI's credential and settings seeding (reference §7.10) ---------------------------------------


def seed_claude_config_dir(config_dir: Path, env: Mapping[str, str] | None = None) -> None:
    """Blocking: copy the caller's Claude credentials, ``.claude.json`` and settings into ``config_dir``.

    See the module docstring for what is copied from where. ``env`` is the environment the CLI will get
    (the SDK's ``options.env``); its ``CLAUDE_CONFIG_DIR`` wins over the process's.
    """
    env = env or {}
    caller_config_dir = env.get("CLAUDE_CONFIG_DIR") or os.environ.get("CLAUDE_CONFIG_DIR")
    source_dir = _caller_config_dir(env)

    credentials = _read_if_present(source_dir / ".credentials.json")
    if caller_config_dir is None and not _any_set(env, "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        keychain = _read_keychain_credentials()
        if keychain is not None:
            credentials = keychain.encode("utf-8")
    if credentials is not None:
        _write_seed(config_dir / ".credentials.json", _redact_refresh_token(credentials))

    claude_json = Path(caller_config_dir) / ".claude.json" if caller_config_dir else Path.home() / ".claude.json"
    _copy_if_present(claude_json, config_dir / ".claude.json")
    for name in ("settings.json", "cowork_settings.json"):
        settings = _read_if_present(source_dir / name)
        if settings is not None:
            _write_seed(config_dir / name, _strip_settings_for_resume(settings))


def _caller_config_dir(env: Mapping[str, str]) -> Path:
    """The caller's config dir: ``env``'s ``CLAUDE_CONFIG_DIR``, else the process's, else ``~/.claude``."""
    configured = env.get("CLAUDE_CONFIG_DIR") or os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) if configured else Path.home() / ".claude"


def _any_set(env: Mapping[str, str], *names: str) -> bool:
    return any(env.get(name) or os.environ.get(name) for name in names)


def _read_keychain_credentials() -> str | None:
    """The Claude CLI's OAuth credentials from the macOS Keychain; None elsewhere, when absent, or on error."""
    if platform.system() != "Darwin":
        return None
    user = os.environ.get("USER") or _login_name() or "claude-code-user"
    command = ["security", "find-generic-password", "-a", user, "-w", "-s", KEYCHAIN_SERVICE_NAME]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=KEYCHAIN_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("[SessionStore] resume: Keychain read failed: %s", exc)
        return None
    secret = done.stdout.strip()
    return secret or None


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None


def _redact_refresh_token(credentials: bytes) -> bytes:
    """The credentials without ``claudeAiOauth.refreshToken``; unchanged when unparseable or without one."""
    try:
        data = json.loads(credentials.decode("utf-8"))
    except ValueError:
        return credentials
    oauth = data.get("claudeAiOauth") if isinstance(data, dict) else None
    if not isinstance(oauth, dict) or "refreshToken" not in oauth:
        return credentials
    del oauth["refreshToken"]
    return json.dumps(data).encode("utf-8")


def _strip_settings_for_resume(content: bytes) -> bytes:
    """Settings without the keys that misbehave under a redirected config dir; else ``content`` unchanged.

    Removes :data:`RESUME_SETTINGS_STRIPPED_KEYS` and ``env.CLAUDE_CONFIG_DIR``. A leading BOM is accepted
    (and dropped when re-serialized). Content that is not UTF-8 JSON of an object, that has none of these
    keys, or that cannot be written back as strict JSON (``1e999``) is returned byte for byte.
    """
    try:
        settings = json.loads(content.decode("utf-8-sig"))
    except ValueError:  # UnicodeDecodeError is a ValueError
        return content
    if not isinstance(settings, dict):
        return content
    removed = False
    for key in RESUME_SETTINGS_STRIPPED_KEYS:
        if key in settings:
            del settings[key]
            removed = True
    env = settings.get("env")
    if isinstance(env, dict) and "CLAUDE_CONFIG_DIR" in env:
        del env["CLAUDE_CONFIG_DIR"]
        removed = True
    if not removed:
        return content
    try:
        return json.dumps(settings, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError:
        return content


def _read_if_present(source: Path) -> bytes | None:
    """The bytes of a regular file; None when missing (silently) or unusable (with a warning)."""
    try:
        if not stat.S_ISREG(source.stat().st_mode):
            logger.warning("[SessionStore] resume: skipping %s (%s)", source, "not a regular file")
            return None
        return source.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("[SessionStore] resume: skipping %s (%s)", source, exc)
        return None


def _copy_if_present(source: Path, target: Path) -> None:
    content = _read_if_present(source)
    if content is not None:
        _write_seed(target, content)


def _write_seed(target: Path, content: bytes) -> None:
    """Write a new 0o600 file (symlinks not followed); on failure remove what was written and warn."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        with open(os.open(target, flags, _PRIVATE_FILE_MODE), "wb") as file:
            file.write(content)
        with suppress(OSError):
            target.chmod(_PRIVATE_FILE_MODE)
    except OSError as exc:
        with suppress(OSError):
            target.unlink()
        logger.warning("[SessionStore] resume: skipping %s (%s)", target, exc)
