"""Point an installed Claude Agent SDK's session-store path at this port: :func:`install`, :func:`uninstall`.

``install()`` rebinds, in the running process, the session-store names of the SDK's modules to this project's
(``session_store.sdk``): its resume materialization, mirror batcher, options check, store-backed readers,
mutations, import, summary fold, in-memory store and key helpers, and the session-store types. It works whether
or not the SDK was already imported, because it rebinds names rather than swapping modules:

1. each SDK module that has a counterpart under ``session_store.sdk`` (``_internal.session_resume``,
   ``_internal.transcript_mirror_batcher``, ``_internal.sessions``, ``types``, ...) gets ours for every name
   our module offers and the SDK's module has;
2. every other loaded module of the SDK that imported one of those objects by name (``from
   ._internal.session_resume import build_mirror_batcher`` in the SDK's client, the root package's
   ``InMemorySessionStore``, ``_store_implements`` in the disk readers, ...) is rebound too: any module
   attribute that *is* a replaced SDK object becomes ours. Modules the SDK imports later read the rebound names.

Names *your* modules imported from the SDK before ``install()`` (``from claude_agent_sdk import
InMemorySessionStore`` at the top of an application module) keep the SDK's objects: call ``install()`` first, or
use the opt-in below, which runs before any application module imports the SDK.

What stays the SDK's: the message types its parser builds, ``MirrorErrorMessage`` included (a dropped mirror
batch still arrives as the SDK's ``SystemMessage`` subclass, built by the SDK's parser from the report our
batcher hands to the SDK's ``on_error``), its query loop, transport and task layer (``_task_compat``), its disk
readers and disk mutations (they call our chain builder and helpers where they named them), and its own
conformance harness (``claude_agent_sdk.testing``, which tests a store against the SDK's contracts).

``install()`` is idempotent and thread-safe (one lock), checks the SDK's version against the range CI runs the
end-to-end tests on (:data:`TESTED_SDK_VERSIONS`; anything else raises :class:`UnsupportedSDKVersionError`
naming both), verifies afterwards that the SDK's entry points resolve to this project (else it undoes what it
did and raises), and :func:`uninstall` puts back exactly the objects it replaced. :func:`installed` says
whether it is in force.

The one-line opt-in without code changes is the environment variable ``SESSION_STORE_SDK_INSTALL=1``, read by
the ``session_store_sdk.pth`` file this package installs (see ``session_store_sdk_hook``).
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from dataclasses import dataclass, field
from types import ModuleType

__all__ = [
    "SDK_MODULE_MAP",
    "TESTED_SDK_VERSIONS",
    "UnsupportedSDKVersionError",
    "install",
    "installed",
    "uninstall",
]

SDK = "claude_agent_sdk"

TESTED_SDK_VERSIONS = ("0.2.95", "0.2.190")
"""The oldest and newest ``claude-agent-sdk`` versions ``nox -s sdk_e2e`` runs the end-to-end tests on."""

SDK_MODULE_MAP = {
    f"{SDK}._internal.session_store": "session_store.sdk.session_store",
    f"{SDK}._internal.session_store_validation": "session_store.sdk.session_store_validation",
    f"{SDK}._internal.session_summary": "session_store.sdk.session_summary",
    f"{SDK}._internal.session_resume": "session_store.sdk.session_resume",
    f"{SDK}._internal.session_import": "session_store.sdk.session_import",
    f"{SDK}._internal.transcript_mirror_batcher": "session_store.sdk.transcript_mirror_batcher",
    f"{SDK}._internal.sessions": "session_store.sdk.sessions",
    f"{SDK}._internal.session_mutations": "session_store.sdk.session_mutations",
    f"{SDK}.types": "session_store.sdk.types",
}
"""SDK module -> the module of ours whose ``__all__`` names replace the SDK module's names of the same name."""

KEPT_SDK_NAMES = frozenset({"MirrorErrorMessage"})
"""Names that stay the SDK's everywhere: the message class its parser builds (a ``SystemMessage``)."""

ENTRY_POINTS = (
    f"{SDK}._internal.session_resume.materialize_resume_session",
    f"{SDK}._internal.session_resume.build_mirror_batcher",
    f"{SDK}._internal.session_store_validation.validate_session_store_options",
    f"{SDK}._internal.client.materialize_resume_session",
    f"{SDK}._internal.client.build_mirror_batcher",
    f"{SDK}.InMemorySessionStore",
    f"{SDK}.list_sessions_from_store",
    f"{SDK}.get_session_messages_from_store",
    f"{SDK}.fork_session_via_store",
    f"{SDK}.import_session_to_store",
)
"""Names that must resolve to this project once installed (checked by :func:`install`)."""

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)
"""Values never rebound by identity outside their home module (a small int or a short str is shared)."""


class UnsupportedSDKVersionError(RuntimeError):
    """The installed ``claude-agent-sdk`` is outside :data:`TESTED_SDK_VERSIONS`."""


@dataclass
class _Installed:
    version: str
    replaced: list[tuple[ModuleType, str, object]] = field(default_factory=list)
    """(module, name, the SDK's object), in the order they were rebound."""


_lock = threading.Lock()
_state: _Installed | None = None


def installed() -> bool:
    """Whether :func:`install` is in force in this process."""
    return _state is not None


def install() -> None:
    """Point the installed SDK's session-store path at ``session_store.sdk`` (see the module docstring).

    Imports ``claude_agent_sdk`` if it is not yet imported. A second call does nothing. Raises
    ``ModuleNotFoundError`` when the SDK is not installed, :class:`UnsupportedSDKVersionError` for a version
    outside :data:`TESTED_SDK_VERSIONS`, and ``RuntimeError`` (after undoing everything) if an entry point
    still resolves to the SDK's own code afterwards.
    """
    global _state
    with _lock:
        if _state is not None:
            return
        try:
            root = importlib.import_module(SDK)
        except ModuleNotFoundError as error:
            if error.name != SDK:
                raise
            raise ModuleNotFoundError(
                "session_store.sdk.install(): claude-agent-sdk is not installed; "
                f"pip install 'claude-agent-sdk>={TESTED_SDK_VERSIONS[0]},<={TESTED_SDK_VERSIONS[1]}'",
                name=SDK,
            ) from None
        version = _check_version(root)
        state = _Installed(version)
        try:
            _rebind(state)
            problems = _verify()
        except BaseException:
            _restore(state)
            raise
        if problems:
            _restore(state)
            raise RuntimeError(
                f"session_store.sdk.install(): claude-agent-sdk {version} still uses its own "
                f"{problems[0]} after the rebinding ({len(problems)} names); nothing was changed"
            )
        _state = state


def uninstall() -> None:
    """Undo :func:`install`: every rebound name is the SDK's object again. Does nothing when not installed."""
    global _state
    with _lock:
        if _state is None:
            return
        _restore(_state)
        _state = None


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def _check_version(root: ModuleType) -> str:
    version = getattr(root, "__version__", None)
    oldest, newest = TESTED_SDK_VERSIONS
    parsed = _parse_version(version) if isinstance(version, str) else None
    low, high = _parse_version(oldest), _parse_version(newest)
    assert low is not None and high is not None
    if parsed is None or not low <= parsed <= high:
        raise UnsupportedSDKVersionError(
            f"session_store.sdk.install(): claude-agent-sdk {version!r} is outside the versions it is tested "
            f"with ({oldest} to {newest}); install one of those (pip install "
            f"'claude-agent-sdk>={oldest},<={newest}') or run the SDK without install()"
        )
    return version  # type: ignore[return-value]  # checked above: a str


def _sdk_modules() -> list[ModuleType]:
    return [
        module
        for name, module in list(sys.modules.items())
        if isinstance(module, ModuleType) and (name == SDK or name.startswith(SDK + "."))
    ]


def _rebind(state: _Installed) -> None:
    by_identity: dict[int, tuple[object, object]] = {}
    done: set[tuple[str, str]] = set()

    def replace(module: ModuleType, name: str, new: object) -> None:
        old = getattr(module, name)
        state.replaced.append((module, name, old))
        done.add((module.__name__, name))
        setattr(module, name, new)

    for sdk_name, ours_name in SDK_MODULE_MAP.items():
        sdk_module = importlib.import_module(sdk_name)
        ours = importlib.import_module(ours_name)
        for name in ours.__all__:
            if name in KEPT_SDK_NAMES or not hasattr(sdk_module, name):
                continue
            old, new = getattr(sdk_module, name), getattr(ours, name)
            if old is new:
                continue
            if not isinstance(old, _IMMUTABLE):
                known = by_identity.setdefault(id(old), (old, new))
                if known[1] is not new:
                    raise RuntimeError(
                        f"session_store.sdk.install(): {sdk_name}.{name} is also exported under another name "
                        "that maps to a different object of ours; nothing was changed"
                    )
            replace(sdk_module, name, new)
    importlib.import_module(f"{SDK}._internal.client")  # the query() path: imports the resume names by name
    for module in _sdk_modules():
        for name, value in list(vars(module).items()):
            if (module.__name__, name) in done or name in KEPT_SDK_NAMES:
                continue
            found = by_identity.get(id(value))
            if found is not None and found[0] is value:
                replace(module, name, found[1])


def _restore(state: _Installed) -> None:
    for module, name, old in reversed(state.replaced):
        setattr(module, name, old)
    state.replaced.clear()


def _is_ours(value: object) -> bool:
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in ("session_store", "compat")


def _verify() -> list[str]:
    problems = []
    for dotted in ENTRY_POINTS:
        module_name, _, name = dotted.rpartition(".")
        module = sys.modules.get(module_name)
        if module is None or not _is_ours(getattr(module, name, None)):
            problems.append(dotted)
    return problems
