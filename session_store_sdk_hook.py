"""The opt-in of ``SESSION_STORE_SDK_INSTALL=1``: run ``session_store.sdk.install()`` when the SDK is imported.

``session_store_sdk.pth``, installed beside this module in site-packages, holds one line that Python's ``site``
runs at every start::

    import os; os.environ.get("SESSION_STORE_SDK_INSTALL", "") not in ("", "0") and __import__(...).arm()

With the variable unset (or ``0``) that is one dictionary lookup: neither this module nor ``session_store`` nor
the SDK is imported. With it set, :func:`arm` puts a finder first on ``sys.meta_path`` that answers for
``claude_agent_sdk`` only: it lets the usual finder locate the SDK, runs the SDK's package as usual, then calls
``session_store.sdk.install()`` and steps aside. Nothing is imported before the application imports the SDK, and
an application that never imports it pays nothing more. If the SDK was already imported, :func:`arm` installs
at once. An SDK version ``install()`` refuses makes ``import claude_agent_sdk`` fail with an ``ImportError``
naming the variable, the version and the tested range: the opt-in never silently does not take.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

ENV = "SESSION_STORE_SDK_INSTALL"
SDK = "claude_agent_sdk"
ON = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"", "0", "false", "no", "off"})


def arm() -> None:
    """Install now if the SDK is imported, else when it is; a value other than 1/0 is reported on stderr."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in OFF:
        return
    if value not in ON:
        print(
            f"session_store: {ENV}={os.environ.get(ENV)!r} is neither 1 nor 0; the SDK runs as shipped", file=sys.stderr
        )
        return
    if SDK in sys.modules:
        _install()
    elif not any(isinstance(finder, InstallOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, InstallOnImport())


def disarm() -> None:
    """Remove the finder (the SDK was imported, or a test is done with it)."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, InstallOnImport)]


def _install() -> None:
    from session_store.sdk import install

    try:
        install()
    except Exception as error:
        raise ImportError(f"{ENV}=1: {error} (unset {ENV} to run the SDK as shipped)") from error


class InstallOnImport(importlib.abc.MetaPathFinder):
    """Finds ``claude_agent_sdk`` through the other finders and wraps its loader (see the module docstring)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != SDK:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _InstallAfterLoading(spec.loader)
                return spec
        return None


class _InstallAfterLoading(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.__loader__ = self.loader  # the SDK's own loader again, for resources and reloads
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        disarm()
        _install()
