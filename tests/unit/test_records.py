from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import DataError
from character.records import JsonlStore, validate_messages


def test_append_and_keys(tmp_path: Path) -> None:
    s = JsonlStore(tmp_path / "x.jsonl", ("prompt_id", "k"))
    s.append([{"prompt_id": 1, "k": 0, "t": "a"}, {"prompt_id": 1, "k": 1, "t": "b"}])
    assert s.keys() == {(1, 0), (1, 1)}
    assert len(s) == 2


def test_torn_last_line_is_repaired(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"prompt_id": 1, "k": 0}\n{"prompt_id": 1, "k"')
    s = JsonlStore(p, ("prompt_id", "k"))
    assert s.repaired_bytes > 0
    assert s.keys() == {(1, 0)}
    s.append([{"prompt_id": 1, "k": 1}])
    assert [r["k"] for r in s] == [0, 1]


def test_invalid_complete_last_line_is_repaired(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{"a": \n')
    assert len(JsonlStore(p)) == 1


def test_bad_middle_line_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(DataError, match=r"x.jsonl:2"):
        JsonlStore(p).read()


def test_messages_validation() -> None:
    validate_messages([{"role": "user", "content": "hi"}])
    with pytest.raises(DataError, match="role"):
        validate_messages([{"role": "User", "content": "hi"}])
    with pytest.raises(DataError):
        validate_messages("User: hi")  # type: ignore[arg-type]
