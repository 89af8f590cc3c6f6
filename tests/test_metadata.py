"""Subagent metadata sidecars and agent_metadata entries (reference §3.8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store.metadata import (
    agent_metadata_sidecar_path,
    parent_ids_from_agent_metadata,
    read_agent_metadata_sidecar,
    split_agent_metadata,
)


def transcript_in(tmp_path: Path, sidecar_text: str | bytes | None) -> Path:
    transcript = tmp_path / "agent-abc.jsonl"
    transcript.write_text("")
    sidecar = tmp_path / "agent-abc.meta.json"
    if isinstance(sidecar_text, str):
        sidecar.write_text(sidecar_text, encoding="utf-8")
    elif isinstance(sidecar_text, bytes):
        sidecar.write_bytes(sidecar_text)
    return transcript


def test_sidecar_path_replaces_the_jsonl_suffix_in_the_same_directory() -> None:
    assert agent_metadata_sidecar_path(Path("/s/subagents/agent-1.jsonl")) == Path("/s/subagents/agent-1.meta.json")


def test_sidecar_path_rejects_a_non_transcript_path() -> None:
    with pytest.raises(ValueError, match=r"does not end in '\.jsonl'"):
        agent_metadata_sidecar_path(Path("/s/agent-1.json"))


def test_reading_a_sidecar_returns_its_object(tmp_path: Path) -> None:
    transcript = transcript_in(tmp_path, '{"toolUseId": "tu-1", "agentType": "explorer"}')
    assert read_agent_metadata_sidecar(transcript) == {"toolUseId": "tu-1", "agentType": "explorer"}


@pytest.mark.parametrize("content", [None, "{not json", b"\xff\xfe\x00bad", "[1, 2]", '"text"'])
def test_a_missing_or_unusable_sidecar_reads_as_none(tmp_path: Path, content: str | bytes | None) -> None:
    assert read_agent_metadata_sidecar(transcript_in(tmp_path, content)) is None


def test_other_os_errors_propagate(tmp_path: Path) -> None:
    transcript = transcript_in(tmp_path, None)
    (tmp_path / "agent-abc.meta.json").mkdir()
    with pytest.raises(IsADirectoryError):
        read_agent_metadata_sidecar(transcript)


def test_split_takes_the_last_metadata_entry_as_a_copy_and_keeps_the_rest_in_order() -> None:
    first, last = {"type": "agent_metadata", "v": 1}, {"type": "agent_metadata", "v": 2}
    line_a, line_b = {"type": "user", "uuid": "a"}, {"type": "assistant", "uuid": "b"}
    metadata, transcript = split_agent_metadata([first, line_a, "not a dict", last, line_b])
    assert metadata == last
    assert metadata is not last
    assert transcript == [line_a, "not a dict", line_b]


def test_split_without_metadata_gives_none() -> None:
    assert split_agent_metadata([{"type": "user"}]) == (None, [{"type": "user"}])


def test_parent_ids_use_only_string_values() -> None:
    assert parent_ids_from_agent_metadata({"toolUseId": "tu", "parentAgentId": "pa"}) == ("tu", "pa")
    assert parent_ids_from_agent_metadata({"toolUseId": 3, "parentAgentId": None}) == (None, None)
    assert parent_ids_from_agent_metadata(None) == (None, None)
    assert parent_ids_from_agent_metadata({}) == (None, None)
