"""``rename``, ``tag``, ``fork`` and ``delete``: the store-backed mutations, on sessions that exist.

A title or tag with a control character inside it (ESC, BEL, a C1 control such as 0x9b, DEL, a newline...) is
refused with a usage error naming the character and its position, rather than stored and replayed to every
terminal that lists the session; whitespace the store strips anyway (a trailing newline) is let through.
"""

from __future__ import annotations

from ..mutations import (
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    tag_session_via_store,
)
from ..types import SessionStore, store_implements
from .output import Report, redact_url, visible
from .running import EXIT_USAGE, CliError
from .scope import Scope, require_session, require_session_id

__all__ = ["delete_command", "fork_command", "rename_command", "require_printable", "tag_command"]


def require_printable(value: str, what: str) -> str:
    """``value`` if no control character is left once it is stripped; else a usage error naming the first."""
    stripped = value.strip()
    start = value.find(stripped)
    for position, char in enumerate(stripped, start + 1):
        if visible(char) != char:
            raise CliError(
                f"the {what} has the control character {visible(char)} (U+{ord(char):04X}) at position {position}; "
                "remove it (titles and tags are shown on terminals, which would obey it)",
                EXIT_USAGE,
            )
    return value


async def rename_command(store: SessionStore, scope: Scope, session_id: str, title: str) -> Report:
    require_printable(title, "title")
    await require_session(store, session_id, scope)
    await rename_session_via_store(store, session_id, title, scope.directory)
    return Report({"session_id": session_id, "title": title.strip()}, f"renamed {session_id} to {title.strip()!r}")


async def tag_command(store: SessionStore, scope: Scope, session_id: str, tag: str | None) -> Report:
    if tag is not None:
        require_printable(tag, "tag")
    await require_session(store, session_id, scope)
    await tag_session_via_store(store, session_id, tag, scope.directory)
    text = f"tagged {session_id} {tag.strip()!r}" if tag is not None else f"cleared the tag of {session_id}"
    return Report({"session_id": session_id, "tag": tag.strip() if tag is not None else None}, text)


async def fork_command(
    store: SessionStore, scope: Scope, session_id: str, up_to: str | None, title: str | None
) -> Report:
    if title is not None:
        require_printable(title, "title")
    await require_session(store, session_id, scope)
    if up_to is not None:
        require_session_id(up_to, "message id (--up-to)")
    result = await fork_session_via_store(store, session_id, scope.directory, up_to_message_id=up_to, title=title)
    return Report(
        {"session_id": result.session_id, "forked_from": session_id},
        f"forked {session_id} into new session {result.session_id}",
    )


async def delete_command(store: SessionStore, scope: Scope, session_id: str) -> Report:
    await require_session(store, session_id, scope)
    if not store_implements(store, "delete"):
        raise CliError(f"the store at {redact_url(scope.store_url)} cannot delete sessions (it has no delete())")
    await delete_session_via_store(store, session_id, scope.directory)
    return Report({"session_id": session_id, "deleted": True}, f"deleted {session_id} and its subagents")
