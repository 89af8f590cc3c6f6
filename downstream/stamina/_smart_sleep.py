"""stamina's async sleep on ``compat`` (vendored as ``stamina._vendored_compat``); replaces ``_core._smart_sleep``.

stamina 26.1.0 hands tenacity an async ``_smart_sleep(delay)`` that asks sniffio which library is running and then
imports and awaits ``asyncio.sleep`` or ``trio.sleep``, on every retry; without sniffio it assumes asyncio. That
function and its sniffio import are its whole asyncio/trio dispatch layer. Here it is :func:`compat.sleep`, which
decides with one attribute read and returns the native library's sleep to await:

* asyncio and trio (also under ``anyio.run``): the native ``sleep(delay)``, as before;
* any other library, or no loop: :class:`compat.UnsupportedBackendError`, a ``RuntimeError`` naming what was found
  (stamina raised a ``RuntimeError`` too, ``Unknown async library``);
* a negative or NaN delay: ``ValueError`` on both backends (asyncio's own sleep returns at once); stamina's waits
  are never negative.

Vendoring ``compat`` makes ``sniffio`` a dependency, which stamina itself only uses when it is installed.
"""

from __future__ import annotations

from ._vendored_compat import sleep as _smart_sleep

__all__ = ["_smart_sleep"]
