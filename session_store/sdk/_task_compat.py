"""The SDK's ``_task_compat`` module: detached tasks on asyncio and trio, as :func:`compat.spawn_detached`.

``TaskHandle`` has the SDK's methods (``cancel``, ``done``, ``add_done_callback``, ``await wait()``).
"""

from __future__ import annotations

from compat import TaskHandle, spawn_detached

__all__ = ["TaskHandle", "spawn_detached"]
