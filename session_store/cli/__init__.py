"""The ``session-store`` command line: import, browse, resume and mirror Claude Code sessions in a store (SPEC §6).

Installed as ``session-store`` and runnable as ``python -m session_store``. Every command except ``demo`` opens
the store named by ``--store URL`` (else ``$SESSION_STORE_URL``, else the embedded SQLite file
``~/.local/share/session-store/sessions.db``; see ``session_store.adapters.sqlite``) through
:func:`session_store.adapters.open_store`, runs on the async library chosen by ``--backend`` and prints a
table for people or, with ``--json``, one JSON document on stdout for scripts.

The modules, each importing only those listed before it (no import circle; ``tests/test_cli_imports.py``
checks it):

- :mod:`~session_store.cli.output`: what is printed and where (``Report``, ``Console``, the progress bar).
- :mod:`~session_store.cli.running`: ``CliError``, the exit statuses, and :func:`run_on_backend`, the one place
  of ``session_store`` that chooses an event loop (asyncio or trio, imported by name).
- :mod:`~session_store.cli.scope`: store URLs, opening a store, the project a command works on.
- :mod:`~session_store.cli.browse`: ``list``, ``show``, ``subagents``.
- :mod:`~session_store.cli.resume_into`: ``resume SESSION --into DIR``.
- :mod:`~session_store.cli.edit`: ``rename``, ``tag``, ``fork``, ``delete`` (on sessions that exist).
- :mod:`~session_store.cli.import_folder`: ``import [FOLDER]``.
- :mod:`~session_store.cli.mirror`: ``mirror [FOLDER]``, on the library's
  :class:`~session_store.watching.TranscriptFolderWatcher`.
- :mod:`~session_store.cli.demo`: ``demo``, the tour on the shipped sample transcripts.
- :mod:`~session_store.cli.parser`: the argument parser.
- :mod:`~session_store.cli.dispatch`: :func:`main`, which parses, runs the command and reports errors as one
  line (and how the command line treats signals).
"""

from __future__ import annotations

from .dispatch import describe_error, main
from .running import BACKENDS, CliError, run_on_backend
from .scope import default_store_url

__all__ = ["BACKENDS", "CliError", "default_store_url", "describe_error", "main", "run_on_backend"]
