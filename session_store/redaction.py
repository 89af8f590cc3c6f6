"""Keeping store passwords out of every message, log line and banner: one redaction for URLs and driver errors.

A store URL may carry a secret in its userinfo (``postgresql://user:pw@host/db``), in its query string
(``?password=``, ``?sslpassword=``, anything named like a password, token, secret or key), and users mistype
URLs (``postgresql:/user:pw@host``, no scheme at all, host lists, ``%zz`` that is no percent-encoding). Drivers
then echo pieces of it back in their errors (psycopg: ``invalid percent-encoded token: "pw%zz"``). So:

- :func:`redact_url` shows a URL with its secrets replaced by ``***`` and never raises: it parses nothing it
  could fail on (no port is cast to an integer, no percent-decoding is required to succeed). A well-formed URL
  (``scheme://``) keeps its user name (``user:***@host``); a malformed one loses its whole userinfo
  (``postgresql:/***@host``), since which part is the password cannot be told.
- :func:`redact` cleans any text (an error message, a log line) that may hold a URL or its secrets: the literal
  secrets of ``url`` (raw, percent-decoded and ``+``-decoded) are replaced wherever they appear, every URL-like
  token is passed through :func:`redact_url`, and ``name=value`` pairs whose name looks secret lose their value.

Literal replacement needs :data:`MIN_LITERAL_SECRET_LENGTH` characters: a shorter password is still removed from
every URL form and ``name=value`` pair, but not from free text, where replacing one or two letters everywhere
would garble the message without protecting anything.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

__all__ = ["MIN_LITERAL_SECRET_LENGTH", "REDACTED", "redact", "redact_url", "url_secrets"]

REDACTED = "***"
"""What a secret is replaced with."""

MIN_LITERAL_SECRET_LENGTH = 3
"""Secrets of at least this many characters are replaced wherever they appear in a text."""

_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature", re.IGNORECASE)
"""A query parameter or ``name=value`` pair whose name contains one of these holds a secret."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_QUERY_PART = re.compile(r"([?&;#])")
_URL_TOKEN = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*:[^\s'\"<>`]+")
_SECRET_PAIR = re.compile(
    r"(?P<name>[\w.\-]*(?:pass|pwd|secret|token|key|auth|credential|signature)[\w.\-]*)"
    r"(?P<equals>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,)'\"]+)",
    re.IGNORECASE,
)


def _split(url: str) -> tuple[str, str, str, str, bool]:
    """``url`` as (scheme with colon, leading slashes, userinfo, the rest) and whether it is well formed.

    The userinfo runs to the last ``@`` before the host ends (the first ``/``, ``?`` or ``#`` after the first
    ``@``), so a password holding ``/``, ``?`` or ``@`` unencoded is still taken whole. It is empty without ``@``.
    """
    match = _SCHEME.match(url)
    scheme, rest = (match.group(), url[match.end() :]) if match else ("", url)
    stripped = rest.lstrip("/")
    slashes = rest[: len(rest) - len(stripped)]
    well_formed = bool(match) and len(slashes) >= 2
    first_at = stripped.find("@")
    if first_at < 0:
        return scheme, slashes, "", stripped, well_formed
    host_end = min((i for i in map(lambda c: stripped.find(c, first_at), "/?#") if i >= 0), default=len(stripped))
    userinfo_end = stripped.rfind("@", 0, host_end)
    return scheme, slashes, stripped[: userinfo_end + 1], stripped[userinfo_end + 1 :], well_formed


def _password_of(userinfo: str, well_formed: bool) -> str:
    """The secret part of ``userinfo`` (without its ``@``): after the first ``:``, or all of it if malformed."""
    credentials = userinfo[:-1]
    if well_formed:
        return credentials.partition(":")[2]
    return credentials


def _redact_query(rest: str) -> str:
    """``rest`` (from the first ``?`` or ``#`` on) with the value of every secret-named parameter redacted."""
    parts = _QUERY_PART.split(rest)
    for index, part in enumerate(parts):
        name, equals, _ = part.partition("=")
        if equals and _SECRET_NAME.search(unquote_plus(name)):
            parts[index] = f"{name}={REDACTED}"
    return "".join(parts)


def _query_start(rest: str) -> int:
    return min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))


def redact_url(url: str) -> str:
    """``url`` with every secret it carries replaced by ``***`` (for messages; never raises).

    ``postgresql://bob:pw@db/x`` -> ``postgresql://bob:***@db/x``; ``postgresql:/bob:pw@db/x`` (malformed) ->
    ``postgresql:/***@db/x``; ``redis://h/0?password=pw`` -> ``redis://h/0?password=***``; host lists such as
    ``redis+cluster://u:pw@h1:7000,h2:7001/`` are handled like one host.
    """
    scheme, slashes, userinfo, rest, well_formed = _split(url)
    if userinfo:
        password = _password_of(userinfo, well_formed)
        if password or not well_formed:
            kept = userinfo[: len(userinfo) - len(password) - 1] if well_formed else ""
            userinfo = f"{kept}{REDACTED}@"
    cut = _query_start(rest)
    return _SECRET_PAIR.sub(_redact_pair, scheme + slashes + userinfo + rest[:cut] + _redact_query(rest[cut:]))


def _redact_pair(match: re.Match[str]) -> str:
    return f"{match['name']}{match['equals']}{REDACTED}"


def url_secrets(url: str | None) -> list[str]:
    """The secrets ``url`` carries, each as written, percent-decoded and ``+``-decoded; longest first."""
    if not url:
        return []
    _, _, userinfo, rest, well_formed = _split(url)
    written: list[str] = []
    if userinfo:
        # a malformed URL's userinfo is all secret, but a driver may echo only what follows its first colon
        written += [_password_of(userinfo, well_formed), userinfo[:-1].partition(":")[2]]
    for part in _QUERY_PART.split(rest[_query_start(rest) :]):
        name, equals, value = part.partition("=")
        if equals and _SECRET_NAME.search(unquote_plus(name)):
            written.append(value)
    for match in _SECRET_PAIR.finditer(url):
        written.append(match["value"].strip("'\""))
    found = {form for secret in written for form in (secret, unquote(secret), unquote_plus(secret)) if form}
    return sorted(found, key=lambda secret: (-len(secret), secret))


def _redact_token(match: re.Match[str]) -> str:
    token = match.group()
    return redact_url(token) if any(mark in token for mark in "@?=") else token


def redact(text: str, *, url: str | None = None) -> str:
    """``text`` without the secrets of ``url`` and without the secrets of any URL or ``name=value`` in it."""
    for secret in url_secrets(url):
        if len(secret) >= MIN_LITERAL_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    text = _URL_TOKEN.sub(_redact_token, text)
    return _SECRET_PAIR.sub(_redact_pair, text)
