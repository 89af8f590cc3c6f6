"""Project keys, hashing, UUIDs, projects dir and transcript-path mapping (reference §3, §4.3; SPEC §4 decision 1)."""

from __future__ import annotations

import ctypes
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store.keys import (
    MAX_SANITIZED_LENGTH,
    canonicalize_path,
    claude_config_dir,
    default_projects_dir,
    file_path_to_session_key,
    project_key_for_directory,
    sanitize_path,
    simple_hash,
    validate_session_key,
    validate_uuid,
)
from session_store.types import SessionKey

# Expected values below were produced by running the Claude CLI's JavaScript algorithm in Node.js:
#   hash: for (i...) h = ((h << 5) - h + s.charCodeAt(i)) | 0; Math.abs(h).toString(36)
#   sanitize: s.replace(/[^a-zA-Z0-9]/g, "-"), cut at 200 + "-" + hash(original)
# (JS strings are UTF-16, so an emoji is two code units: two dashes, two hash steps.)
JS_HASHES = {
    "": "0",
    "a": "2p",
    "hello": "1n1e4y",
    "/Users/foo/my-project": "jiemc7",
    "/home/zoë/café": "kb4b51",
    "/tmp/😀party": "w88p44",
    # 😀 = U+1F600 = surrogates 0xD83D, 0xDE00: 0xD83D * 31 + 0xDE00 = 1772899 = "11zz7" in base 36
    "😀": "11zz7",
    "/x" * 150: "4y6yx2",
    "/home/" + "😀" * 120: "ciej0p",
    "a" * 199 + "😀": "rlxqg4",
    "/srv/漢字/项目": "m29rzs",
}


def js_reference_hash(text: str) -> str:
    """An independent rendering of JS ``hashCode``: UTF-16-BE units, ``ctypes.c_int32`` for the ``| 0``."""
    raw = text.encode("utf-16-be", "surrogatepass")
    value = 0
    for index in range(0, len(raw), 2):
        value = ctypes.c_int32(value * 31 + int.from_bytes(raw[index : index + 2], "big")).value
    magnitude = abs(value)
    digits = ""
    while True:
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[magnitude % 36] + digits
        magnitude //= 36
        if magnitude == 0:
            return digits


def session_key(project_key: str, session_id: str, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": project_key, "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


# -- simple_hash --


@pytest.mark.parametrize(("text", "expected"), JS_HASHES.items(), ids=lambda v: repr(v)[:24])
def test_simple_hash_matches_the_cli_javascript_hash(text: str, expected: str) -> None:
    assert simple_hash(text) == expected


def test_simple_hash_hashes_an_emoji_as_two_utf16_units_not_one_code_point() -> None:
    code_point_hash = "2r5s"  # what the reference Python SDK gives for "😀" (reference §3.3)
    assert simple_hash("😀") == "11zz7" != code_point_hash


@given(st.text())
def test_simple_hash_agrees_with_an_independent_utf16_reference(text: str) -> None:
    assert simple_hash(text) == js_reference_hash(text)


# -- sanitize_path --


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/Users/foo/my-project", "-Users-foo-my-project"),
        ("plugin:name:server", "plugin-name-server"),
        ("/home/zoë/café", "-home-zo--caf-"),
        ("/tmp/😀party", "-tmp---party"),
        ("/srv/漢字/项目", "-srv------"),
        ("ABCxyz019", "ABCxyz019"),
    ],
)
def test_sanitize_path_replaces_each_utf16_unit_outside_ascii_alphanumerics(name: str, expected: str) -> None:
    assert sanitize_path(name) == expected


def test_sanitize_path_keeps_exactly_200_units_whole() -> None:
    name = "b" * MAX_SANITIZED_LENGTH
    assert sanitize_path(name) == name


def test_sanitize_path_cuts_long_ascii_paths_and_appends_the_hash_of_the_unsanitized_path() -> None:
    key = sanitize_path("/x" * 150)
    assert key == "-x" * 100 + "-4y6yx2"
    assert len(key) == 207


def test_sanitize_path_counts_the_200_unit_limit_in_utf16_units() -> None:
    # 199 letters + one emoji = 201 UTF-16 units: over the limit in JS (a code-point count would say 200)
    assert sanitize_path("a" * 199 + "😀") == "a" * 199 + "-" + "-rlxqg4"


def test_sanitize_path_cuts_long_emoji_paths_like_the_cli() -> None:
    assert sanitize_path("/home/" + "😀" * 120) == "-home-" + "-" * 194 + "-ciej0p"


def test_sanitize_path_leaves_accented_letters_as_one_dash_each() -> None:
    assert sanitize_path("é") == "-"
    assert sanitize_path(unicodedata.normalize("NFD", "é")) == "e-"


# -- validate_uuid --


@pytest.mark.parametrize("value", ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"])
def test_validate_uuid_accepts_either_case(value: str) -> None:
    assert validate_uuid(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "not-a-uuid", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-426614174000\n", "x" * 36],
)
def test_validate_uuid_rejects_anything_else(value: str) -> None:
    assert validate_uuid(value) is None


# -- canonicalize_path / project_key_for_directory --


def test_canonicalize_path_resolves_symlinks_and_normalizes_to_nfc(tmp_path: Path) -> None:
    real = tmp_path / unicodedata.normalize("NFD", "café")
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert canonicalize_path(str(link)) == unicodedata.normalize("NFC", os.path.realpath(real))


def test_project_key_defaults_to_the_current_directory() -> None:
    assert project_key_for_directory() == project_key_for_directory(Path.cwd())


def test_project_key_resolves_dot_to_the_absolute_cwd() -> None:
    assert project_key_for_directory(".") == sanitize_path(os.path.realpath(os.getcwd()))
    assert project_key_for_directory(".") != sanitize_path(".")


def test_project_key_resolves_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert project_key_for_directory("sub") == project_key_for_directory(tmp_path / "sub")


def test_project_key_has_no_separators_spaces_or_punctuation() -> None:
    key = project_key_for_directory("/tmp/my project!")
    assert not {"/", " ", "!"} & set(key)
    assert key.endswith("-my-project-")


def test_project_key_is_stable() -> None:
    assert project_key_for_directory("/tmp/stable") == project_key_for_directory("/tmp/stable")


def test_project_key_is_the_same_for_nfc_and_nfd_spellings() -> None:
    nfc = "/tmp/" + unicodedata.normalize("NFC", "café")
    nfd = "/tmp/" + unicodedata.normalize("NFD", "café")
    assert project_key_for_directory(nfc) == project_key_for_directory(nfd)


def test_project_key_of_a_long_path_ends_with_the_hash_of_the_absolute_path() -> None:
    long_path = "/tmp/" + "deep/" * 60
    absolute = canonicalize_path(long_path)
    key = project_key_for_directory(long_path)
    assert key.endswith("-" + js_reference_hash(absolute))
    assert len(key) == MAX_SANITIZED_LENGTH + 1 + len(js_reference_hash(absolute))


# -- projects directory --


def test_projects_dir_prefers_the_given_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/from/process")
    assert default_projects_dir({"CLAUDE_CONFIG_DIR": "/from/options"}) == Path("/from/options/projects")


def test_projects_dir_ignores_an_empty_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/from/process")
    assert default_projects_dir({"CLAUDE_CONFIG_DIR": ""}) == Path("/from/process/projects")


def test_projects_dir_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_projects_dir() == tmp_path / ".claude" / "projects"


def test_claude_config_dir_is_nfc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", unicodedata.normalize("NFD", "/cfg/café"))
    assert str(claude_config_dir()) == unicodedata.normalize("NFC", "/cfg/café")


# -- file_path_to_session_key --

PROJECTS = "/p"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/p/proj/sid.jsonl", session_key("proj", "sid")),
        ("/p/proj/not-a-uuid.jsonl", session_key("proj", "not-a-uuid")),
        ("/p/proj/sid/subagents/agent-1.jsonl", session_key("proj", "sid", "subagents/agent-1")),
        ("/p/proj/sid/subagents/deeper/agent-2.jsonl", session_key("proj", "sid", "subagents/deeper/agent-2")),
        ("/p/proj/sid/a/b", session_key("proj", "sid", "a/b")),
        ("/p/./proj/sid.jsonl", session_key("proj", "sid")),
        ("/p/proj/../proj/sid.jsonl", session_key("proj", "sid")),
    ],
)
def test_file_path_maps_to_a_session_key(path: str, expected: SessionKey) -> None:
    assert file_path_to_session_key(path, PROJECTS) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/p",
        "/p/proj",
        "/p/proj/sid.JSONL",
        "/p/proj/sid.txt",
        "/p/proj/sid/agent-1.jsonl",
        "/elsewhere/proj/sid.jsonl",
        "/p/../proj/sid.jsonl",
    ],
)
def test_file_path_outside_the_layout_maps_to_none(path: str) -> None:
    assert file_path_to_session_key(path, PROJECTS) is None


def test_file_path_accepts_a_trailing_separator_and_path_objects() -> None:
    assert file_path_to_session_key(Path("/p/proj/sid.jsonl"), "/p/") == session_key("proj", "sid")


# -- validate_session_key --


def test_validate_session_key_rejects_an_empty_subpath_and_says_how_to_fix_it() -> None:
    with pytest.raises(ValueError, match=r"subpath must be non-empty.*omit the subpath"):
        validate_session_key(session_key("proj", "sess", ""))


@pytest.mark.parametrize("subpath", [None, "subagents/agent-1"])
def test_validate_session_key_accepts_main_and_subagent_keys(subpath: str | None) -> None:
    validate_session_key(session_key("proj", "sess", subpath))  # the test fails if this raises


# -- coverage of reference §16.2 (added by the coverage audit) --


@pytest.mark.parametrize("env", [{}, None, {"OTHER": "x"}], ids=["empty-mapping", "none", "unrelated-keys"])
def test_projects_dir_falls_back_to_the_process_environment(
    env: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/from/process")
    assert default_projects_dir(env) == Path("/from/process/projects")


def test_file_path_that_relpath_cannot_relate_maps_to_none() -> None:
    assert file_path_to_session_key("", PROJECTS) is None  # os.path.relpath raises ValueError("no path specified")


def test_file_path_on_another_windows_drive_maps_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import ntpath

    monkeypatch.setattr(os.path, "relpath", ntpath.relpath)  # Windows rules: no relative path across drives
    assert file_path_to_session_key("D:\\projects\\proj\\sid.jsonl", "C:\\projects") is None
