"""The write path: buffer ``transcript_mirror`` frames and append them to a store in order (reference §6).

The Claude CLI writes every transcript line to local disk and also emits it on stdout as a frame
``{"type": "transcript_mirror", "filePath": ..., "entries": [...]}``. The caller's read loop hands each frame to
:meth:`TranscriptMirrorBatcher.enqueue`, which only buffers it, so a slow store never stalls model streaming.
Buffered frames reach :meth:`SessionStore.append` when the caller calls :meth:`~TranscriptMirrorBatcher.flush`
(once per turn, on ``result``), when more than :data:`MAX_PENDING_ENTRIES` entries or
:data:`MAX_PENDING_BYTES` are pending (a background flush through ``compat.spawn_detached``), and at
:meth:`~TranscriptMirrorBatcher.close`.

**At most one waiting background flush.** A background flush that has not yet taken its frames (not started,
or waiting for the lock) will take every frame enqueued meanwhile, so crossing a threshold again starts no
second one: the frame rides along. In eager mode (thresholds 0) N frames enqueued in one tick therefore cost
one task and one ``append`` per path, not N; and behind a slow store at most one flush is sending and one is
waiting, however fast frames arrive.

How a flush works:

- **Detach, then lock.** A flush first takes the enqueue buffer (later frames start a fresh one), then waits for
  the batcher's ``compat.Lock``. The lock is FIFO-fair on both backends, so flushes deliver in the order they
  started and appends for one transcript keep enqueue order, whether the flushes were eager or explicit. Once
  it holds the lock, a flush sends every frame detached so far *and* any enqueued since: all of them are
  newer than anything already sent, so enqueue order holds, and nothing is left for a later flush to wait on.
- **Coalescing.** Frames are grouped by file path as they are enqueued (first-seen order; entries keep enqueue
  order), so each transcript gets one ``append`` per flush. A path whose entries are all empty is skipped.
- **Retries.** Each append runs under ``compat.fail_after(send_timeout)``. A failure is retried
  :data:`MIRROR_APPEND_MAX_ATTEMPTS` times in all, sleeping :data:`MIRROR_APPEND_BACKOFF_S` between attempts.
  A timeout is never retried: the timed-out call may still land, and a retry would race it.
- **Reporting.** A batch that is given up is dropped (the local transcript is already durable) and reported to
  ``on_error`` once the lock is released, so a slow callback never delays the next flush. ``flush`` and
  ``close`` never raise into the caller's read loop; they only propagate cancellation.

``on_error`` is called as ``on_error(key, message)``, the reference's shape: ``key`` is the
:class:`~session_store.types.SessionKey` of the transcript that could not be written, or ``None`` when the frame
could not be mapped to one; ``message`` says what failed. It may be a coroutine function or a plain function;
an exception it raises is logged and swallowed. (``MirrorError`` in ``session_store.types`` is the record of one
such report.)

SPEC §4 decisions applied here:

- Decision 4: a timed-out append reaches ``on_error`` with a message naming the call, the file and the time
  limit (the reference passes ``""``).
- Decision 5: a frame whose path is not a transcript path under ``projects_dir`` is reported through
  ``on_error(None, message)`` (the reference only logs it).

Differences from the reference, both about cancellation, which the reference does not handle:

- A flush that is cancelled while it holds frames (waiting for the lock, inside an append, or during a backoff
  sleep) gives the undelivered frames back; the next ``flush()`` or ``close()`` sends them first. An append
  interrupted by cancellation may therefore be sent twice; stores deduplicate by entry ``uuid`` (SPEC §4
  decision 8). Appends that *failed* are still dropped after the last attempt (at most once).
- ``close()`` runs its flush under ``compat.shield`` and also waits for background flushes still running, so the
  final batch lands even when the caller is being cancelled; the caller's cancellation is re-raised afterwards.

Interruptions (issue 10): a ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit`` raised by the store is not a
failed append: it is not retried and never reported through ``on_error``. The flush stops where it is and gives
its unsent frames back, as on cancellation (the next ``flush()``/``close()`` sends them first), and the exception
reaches the caller: from ``flush()`` or ``close()`` directly when the store raised there, and from a background
flush (whose detached task has nobody to raise to: asyncio would stop the event loop, trio only log it) by the
next ``flush()`` or ``close()``, once that call has done its work. ``close()`` waits for every background flush
even then, so none outlives it.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import compat

from .keys import checked_path, file_path_to_session_key, path_has_empty_component
from .types import MirrorError, SessionKey, SessionStore, SessionStoreEntry, SessionStoreFlushMode
from .validation import check_entry_list, require_number

__all__ = [
    "MAX_PENDING_BYTES",
    "MAX_PENDING_ENTRIES",
    "MIRROR_APPEND_BACKOFF_S",
    "MIRROR_APPEND_MAX_ATTEMPTS",
    "SEND_TIMEOUT_SECONDS",
    "MirrorErrorCallback",
    "TranscriptMirrorBatcher",
    "build_mirror_batcher",
]

logger = logging.getLogger(__name__)

MAX_PENDING_ENTRIES = 500
"""A background flush starts once more than this many entries are pending."""

MAX_PENDING_BYTES = 1 << 20
"""A background flush starts once pending frames exceed this size (1 MiB, counted as JSON characters)."""

SEND_TIMEOUT_SECONDS = 60.0
"""Time limit of one ``SessionStore.append`` call."""

MIRROR_APPEND_MAX_ATTEMPTS = 3
"""Attempts per batch (the first try included) before it is dropped and reported."""

MIRROR_APPEND_BACKOFF_S: tuple[float, ...] = (0.2, 0.8)
"""Seconds to sleep before the 2nd, 3rd, ... attempt; exactly ``MIRROR_APPEND_MAX_ATTEMPTS - 1`` values.

Read at each retry, so tests may monkeypatch it (and the attempt count) to something small."""


def _frame_encoder() -> Callable[[list[SessionStoreEntry], int], Sequence[str]]:
    """The chunks of ``json.dumps(entries, allow_nan=False, check_circular=False)``, from an encoder built once.

    ``json.dumps`` builds its C encoder again on every call. Same text as ``json.dumps(entries)``, so the same
    size: ``TypeError`` for a value JSON cannot carry, ``ValueError`` for NaN or an infinity, and
    ``RecursionError`` for an entry that holds itself (no cycle table to keep between calls: it has no state, so
    one serves every batcher and thread) or is nested deeper than the interpreter allows. ``json.JSONEncoder``
    where ``json`` has no C accelerator.
    """
    default = json.JSONEncoder().default  # TypeError naming the type JSON cannot carry
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        encoder = json.JSONEncoder(allow_nan=False, check_circular=False)
        return lambda entries, _level: [encoder.encode(entries)]
    # markers (None: no cycle table), default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
    encode: Callable[[list[SessionStoreEntry], int], Sequence[str]] = c_make_encoder(
        None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, False
    )
    return encode


_FRAME_CHUNKS = _frame_encoder()

_MAX_REMEMBERED_KEYS = 1024
"""Bound of the batcher's path -> key memo (a session writes a handful of transcripts)."""

MirrorErrorCallback = Callable[[SessionKey | None, str], Awaitable[object] | None]
"""``on_error(key, message)``: a coroutine function or a plain function (see the module docstring)."""


_Buffer = dict[str, list[SessionStoreEntry]]
"""Buffered frames, grouped by file path: path -> the batcher's own list of its entries (first-seen order)."""


def _extend_buffer(older: _Buffer, newer: _Buffer) -> _Buffer:
    """Append ``newer``'s entries to ``older``'s, path by path (``older`` is changed and returned)."""
    for file_path, entries in newer.items():
        held = older.get(file_path)
        if held is None:
            older[file_path] = entries
        else:
            held.extend(entries)
    return older


@dataclass
class TranscriptMirrorBatcher:
    """Buffers ``transcript_mirror`` frames and appends them to ``store`` (see the module docstring).

    ``projects_dir`` is the ``projects`` folder the CLI writes under; frame paths are mapped to keys relative
    to it. Use :func:`build_mirror_batcher` to get the thresholds of a flush mode.
    """

    store: SessionStore
    projects_dir: str
    on_error: MirrorErrorCallback
    send_timeout: float = SEND_TIMEOUT_SECONDS
    max_pending_entries: int = MAX_PENDING_ENTRIES
    max_pending_bytes: int = MAX_PENDING_BYTES

    # Frames enqueued since the last flush started.
    _pending: _Buffer = field(default_factory=dict, init=False, repr=False)
    _pending_entries: int = field(default=0, init=False, repr=False)
    _pending_bytes: int = field(default=0, init=False, repr=False)
    # Frames taken by a flush and not yet sent (a cancelled flush puts its rest back here, in front).
    _detached: _Buffer = field(default_factory=dict, init=False, repr=False)
    # Given-up batches waiting to be reported to on_error.
    _unreported: list[MirrorError] = field(default_factory=list, init=False, repr=False)
    _background: set[compat.TaskHandle] = field(default_factory=set, init=False, repr=False)
    # KeyboardInterrupt / SystemExit / GeneratorExit met by background flushes, for the next flush() or close().
    _interruptions: list[BaseException] = field(default_factory=list, init=False, repr=False)
    _lock: compat.Lock = field(default_factory=compat.Lock, init=False, repr=False)
    # The background flush that has not taken its frames yet (not started or waiting for the lock), if any:
    # frames enqueued while it is set ride along with it instead of starting another flush.
    _waiting_flush: object | None = field(default=None, init=False, repr=False)
    # file_path -> key, for absolute paths (a pure function of the path then): a frame's path is parsed once.
    _keys: dict[str, SessionKey | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        """Refuse settings every flush would fail on, so no frame is lost to them later.

        ``TypeError`` for a store without ``append``, an ``on_error`` that is not callable, a ``projects_dir``
        that is not a path, or a threshold that is not an int; ``ValueError`` for a ``send_timeout`` that is
        not a positive number of seconds (``math.inf``: no limit) or a negative threshold.
        """
        if not callable(getattr(self.store, "append", None)):
            raise TypeError(f"store must be a SessionStore with an append() method, got {type(self.store).__name__}")
        if not callable(self.on_error):
            raise TypeError(f"on_error must be callable as on_error(key, message), got {self.on_error!r}")
        if not isinstance(self.projects_dir, str):
            self.projects_dir = checked_path(self.projects_dir, "projects_dir")
        if not require_number(self.send_timeout, "send_timeout", "seconds") > 0:
            raise ValueError(f"send_timeout must be a positive number of seconds, got {self.send_timeout!r}")
        for name in ("max_pending_entries", "max_pending_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (0 flushes after every frame), got {value}")

    def enqueue(self, file_path: str, entries: list[SessionStoreEntry]) -> None:
        """Buffer one frame; start a background flush when the pending thresholds are exceeded.

        Synchronous and cheap. The size estimate is the length of one ``json.dumps`` of the frame's entries,
        which also checks them here rather than in the store, where one bad entry would sink its whole batch:
        ``entries`` that are not a list of dicts, or hold values JSON cannot carry, raise ``TypeError``, and
        NaN or Infinity ``ValueError`` (see :mod:`session_store.validation`), naming the path; nothing is
        buffered then. The batcher keeps its own copy of the list. Crossing a threshold spawns a task, which
        needs a running asyncio or trio loop (``compat.UnsupportedBackendError`` otherwise).
        """
        path = file_path if type(file_path) is str else checked_path(file_path, "file_path")
        try:
            if type(entries) is not list:
                check_entry_list(entries)  # raises TypeError naming what was passed
            for entry in entries:
                if type(entry) is not dict:
                    check_entry_list(entries)  # dict subclasses pass, anything else raises
                    break
            size = len("".join(_FRAME_CHUNKS(entries, 0)))
        except TypeError as error:
            raise TypeError(f"cannot mirror the frame for {file_path!r}: {error}") from error
        except ValueError as error:  # NaN or Infinity
            raise ValueError(
                f"cannot mirror the frame for {file_path!r}: JSON has no NaN or Infinity ({error}); replace such "
                "values with null, a string or a finite number"
            ) from error
        except RecursionError as error:  # an entry that holds itself, or nested beyond the recursion limit
            raise ValueError(
                f"cannot mirror the frame for {file_path!r}: JSON has no cycles, and an entry holds itself or is "
                f"nested too deeply ({error}); send plain JSON data"
            ) from error
        buffered = self._pending.get(path)
        if buffered is None:
            self._pending[path] = list(entries)
        else:
            buffered.extend(entries)
        self._pending_entries += len(entries)
        self._pending_bytes += size
        if self._pending_entries > self.max_pending_entries or self._pending_bytes > self.max_pending_bytes:
            self._start_background_flush()

    async def flush(self) -> None:
        """Send everything enqueued so far, after any flush already in progress. Never raises an ``Exception``.

        If the caller is cancelled meanwhile, unsent frames stay queued for the next ``flush()``/``close()``.
        A ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit`` from the store propagates (see the module
        docstring), also one a background flush met since the last call, raised after this flush's work.
        """
        await self._drain()
        self._raise_interruption()

    async def close(self) -> None:
        """Final flush: send everything, wait for background flushes, report failures. Never raises an error.

        The work runs under ``compat.shield``, so it completes even when the caller is cancelled (or already
        inside a cancelled scope); the caller's cancellation is re-raised once it is done.
        """
        try:
            await compat.shield(self._keeping_interruptions, self._flush_everything)
        except Exception as exc:  # defensive: _drain never raises, but close() must not either
            logger.debug("[TranscriptMirrorBatcher] close flush failed: %s", exc)
        self._raise_interruption()

    @property
    def background_flushes(self) -> int:
        """How many background (eager) flushes are still running."""
        return sum(1 for handle in self._background if not handle.done())

    def _start_background_flush(self) -> None:
        if self._waiting_flush is not None:
            return  # a background flush has not taken its frames yet: this frame rides along with it
        token = object()
        handle = compat.spawn_detached(self._keeping_interruptions(self._drain, token))
        self._waiting_flush = token
        self._background.add(handle)
        handle.add_done_callback(functools.partial(self._background_flush_done, token))

    def _background_flush_done(self, token: object, handle: compat.TaskHandle) -> None:
        self._background.discard(handle)
        # A flush cancelled before it took its frames (even before it started) must not keep the slot.
        self._release_waiting_slot(token)

    def _release_waiting_slot(self, token: object | None) -> None:
        if token is not None and self._waiting_flush is token:
            self._waiting_flush = None

    async def _keeping_interruptions(self, work: Callable[..., Awaitable[None]], *args: object) -> None:
        """``await work(*args)`` in a task of its own (a background flush, or close's shielded flush, which is a
        task on asyncio), keeping a store's interruption for the caller's next ``flush()``/``close()``.

        Raised out of a task, asyncio would stop the event loop with a ``KeyboardInterrupt`` or ``SystemExit``
        (and trio's detached tasks only log it); cancellation still propagates.
        """
        try:
            await work(*args)
        except compat.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # KeyboardInterrupt, SystemExit, GeneratorExit: _drain handles Exceptions
            self._interruptions.append(exc)

    def _raise_interruption(self) -> None:
        """Re-raise the first interruption a background flush kept (and forget the others)."""
        if self._interruptions:
            interruption = self._interruptions[0]
            self._interruptions.clear()
            raise interruption

    async def _flush_everything(self) -> None:
        try:
            await self._drain()
        finally:  # even when the store interrupted the drain: no background flush outlives close()
            for handle in list(self._background):
                await handle.wait()
        if self._pending or self._detached or self._unreported:
            # A background flush was cancelled and gave its frames back after our drain had finished.
            await self._drain()

    def _detach_pending(self) -> None:
        if self._pending:
            if self._detached:
                _extend_buffer(self._detached, self._pending)
            else:
                self._detached = self._pending
            self._pending = {}
        self._pending_entries = 0
        self._pending_bytes = 0

    async def _drain(self, token: object | None = None) -> None:
        """Detach the enqueue buffer, send all detached frames under the lock, then report failures.

        ``token`` marks the background flush in the waiting slot (see :meth:`_start_background_flush`); it
        gives the slot up when it takes its frames. Contracted never to raise anything but cancellation.
        """
        self._detach_pending()
        try:
            async with self._lock:
                self._release_waiting_slot(token)  # from here on, a new frame needs a new flush
                await self._send_detached()
        except Exception as exc:
            logger.error("[TranscriptMirrorBatcher] flush raised unexpectedly: %s", exc)
        finally:
            self._release_waiting_slot(token)
        if self._unreported:
            await self._report_failures()

    async def _send_detached(self) -> None:
        """Coalesce the detached frames per path and append each path; give unsent frames back on cancellation.

        Called under the lock: takes the frames detached so far and those enqueued since (all newer than any
        frame already sent).
        """
        self._detach_pending()
        by_path, self._detached = self._detached, {}
        unsent = dict(by_path)
        try:
            for file_path, entries in by_path.items():
                if entries:
                    try:
                        await self._send_path(file_path, entries)
                    except Exception as exc:  # defensive: a bug here must not take the other paths down too
                        message = f"dropped {len(entries)} entries for {file_path!r}: {type(exc).__name__}: {exc}"
                        logger.error("[TranscriptMirrorBatcher] %s", message)
                        self._unreported.append(MirrorError(None, message))
                del unsent[file_path]
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled: the next flush sends these first
                # Fresh lists: the store may still hold the one it was given when the cancellation came.
                given_back = {file_path: list(entries) for file_path, entries in unsent.items()}
                self._detached = _extend_buffer(given_back, self._detached)
            raise

    def _key_of(self, file_path: str) -> SessionKey | None:
        """``file_path_to_session_key``, remembered per absolute path (a relative one depends on the cwd)."""
        try:
            key = self._keys[file_path]
        except KeyError:
            key = file_path_to_session_key(file_path, self.projects_dir)
            if os.path.isabs(file_path) and os.path.isabs(self.projects_dir):
                if len(self._keys) >= _MAX_REMEMBERED_KEYS:
                    self._keys.clear()
                self._keys[file_path] = key
        return None if key is None else key.copy()  # the store gets its own dict, as before

    async def _send_path(self, file_path: str, entries: list[SessionStoreEntry]) -> None:
        key = self._key_of(file_path)
        if key is None:
            message = (
                f"dropped a mirror frame of {len(entries)} entries: {file_path!r} is not a transcript path under "
                f"projects_dir {self.projects_dir!r}; the CLI's CLAUDE_CONFIG_DIR likely differs from the one "
                "the batcher was built with (custom env or container?)"
            )
            if path_has_empty_component(file_path):
                message = (
                    f"dropped a mirror frame of {len(entries)} entries: {file_path!r} has an empty path component "
                    "('//' or a trailing separator), which the CLI never writes; it maps to no session key rather "
                    "than being stored as another file's"
                )
            logger.warning("[SessionStore] %s", message)
            self._unreported.append(MirrorError(None, message))
            return
        error = await self._append_with_retries(key, file_path, entries)
        if error is not None:
            logger.error("[TranscriptMirrorBatcher] flush failed for %s: %s", file_path, error)
            self._unreported.append(MirrorError(key, error))

    async def _append_with_retries(
        self, key: SessionKey, file_path: str, entries: list[SessionStoreEntry]
    ) -> str | None:
        """Append one coalesced batch; None on success, else what went wrong (never empty)."""
        attempts = MIRROR_APPEND_MAX_ATTEMPTS
        error = f"SessionStore.append() was not attempted for {file_path} (MIRROR_APPEND_MAX_ATTEMPTS < 1)"
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await compat.sleep(MIRROR_APPEND_BACKOFF_S[attempt - 2])
            started = compat.current_time()
            try:
                with compat.fail_after(self.send_timeout) as deadline:
                    await self.store.append(key, entries)
            except TimeoutError as exc:
                # Not retried: the timed-out call may still land, and a retry would run beside it.
                return self._describe_timeout(file_path, exc, deadline.cancelled_caught, started)
            except Exception as exc:
                error = (
                    f"SessionStore.append() failed for {file_path} after {attempt} of {attempts} attempts: "
                    f"{type(exc).__name__}: {exc}"
                )
                logger.debug("[TranscriptMirrorBatcher] append attempt %d/%d failed: %s", attempt, attempts, exc)
            else:
                return None
        return error

    def _describe_timeout(self, file_path: str, exc: TimeoutError, ours: bool, started: float) -> str:
        if ours:
            message = (
                f"SessionStore.append() for {file_path} timed out after {self.send_timeout:g}s "
                "(send_timeout); not retried because the timed-out call may still land"
            )
        else:
            elapsed = compat.current_time() - started
            detail = str(exc) or "no details"
            message = (
                f"SessionStore.append() for {file_path} raised TimeoutError after {elapsed:.3g}s ({detail}); "
                "not retried because the call may still land"
            )
        logger.debug("[TranscriptMirrorBatcher] %s", message)
        return message

    async def _report_failures(self) -> None:
        while self._unreported:
            failure = self._unreported.pop(0)
            try:
                outcome = self.on_error(failure.key, failure.error)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                logger.error("[TranscriptMirrorBatcher] on_error callback raised: %s", exc)


def build_mirror_batcher(
    store: SessionStore,
    projects_dir: str | os.PathLike[str],
    on_error: MirrorErrorCallback,
    flush_mode: SessionStoreFlushMode = "batched",
) -> TranscriptMirrorBatcher:
    """A batcher for one CLI session whose transcripts live under ``projects_dir`` (reference §6.8).

    Pass ``MaterializedResume.projects_dir`` after a store-backed resume, otherwise
    ``session_store.keys.default_projects_dir(env)`` for the CLI's environment. ``flush_mode="batched"`` keeps
    the 500-entry / 1 MiB thresholds; ``"eager"`` sets both to 0, so every frame is sent by a background flush
    at once (frames enqueued before that flush takes them ride along with it). The send timeout is always
    :data:`SEND_TIMEOUT_SECONDS`.
    """
    if flush_mode not in ("batched", "eager"):
        raise ValueError(f"flush_mode must be 'batched' or 'eager', got {flush_mode!r}")
    eager = flush_mode == "eager"
    return TranscriptMirrorBatcher(
        store=store,
        projects_dir=checked_path(projects_dir, "projects_dir"),
        on_error=on_error,
        max_pending_entries=0 if eager else MAX_PENDING_ENTRIES,
        max_pending_bytes=0 if eager else MAX_PENDING_BYTES,
    )
