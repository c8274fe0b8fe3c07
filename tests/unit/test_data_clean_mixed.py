"""`character data clean` on a labelled mix of clean look-alikes and corrupted replies.

tests/data/filters_mixed.jsonl holds 71 rows in 18 families (scripts, Latin-script drift, length
floors, labelled lists, ratings, stage directions, code, fake turns, open code blocks, identity,
refusals, loops, garbage, role labels, DPO pairs, self-interactions, empty replies, reasoning blocks).
Each row says what must happen to it (`expect`: keep, drop or repair); the cleaner ignores the label.
The filters before issue 16 got 21 of them wrong (9 clean rows dropped, 12 corrupted rows kept).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

MIXED = Path(__file__).parents[1] / "data" / "filters_mixed.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_set_is_big_and_varied_enough() -> None:
    rows = _rows(MIXED)
    expect = Counter(r["expect"] for r in rows)
    assert len(rows) >= 60 and len({r["family"] for r in rows}) >= 15
    assert expect["keep"] >= 25 and expect["drop"] >= 25 and expect["repair"] >= 4
    assert len({r["id"] for r in rows}) == len(rows)


def test_data_clean_keeps_every_clean_row_intact_and_catches_every_slip(tmp_path: Path) -> None:
    from character.cli import app

    out, rej = tmp_path / "kept.jsonl", tmp_path / "rejects.jsonl"
    res = CliRunner().invoke(app, ["data", "clean", str(MIXED), "-o", str(out), "--rejects", str(rej)])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in _rows(MIXED)}
    kept = {r["id"]: r for r in _rows(out)}
    rejected = {r["id"]: r for r in _rows(rej)}
    wrong = []
    for i, r in rows.items():
        if r["expect"] == "keep" and kept.get(i) != r:
            wrong.append(
                f"{i}: clean row " + (f"dropped ({rejected[i]['reason']})" if i in rejected else "changed")
            )
        if r["expect"] == "drop" and i not in rejected:
            wrong.append(f"{i}: corrupted row kept")
        if r["expect"] == "repair" and (i not in kept or kept[i] == r):
            wrong.append(f"{i}: not repaired ({rejected[i]['reason'] if i in rejected else 'unchanged'})")
    assert not wrong, "\n".join(wrong)
    assert len(kept) + len(rejected) == len(rows)
    assert "repaired and kept: hallucinated_turn" in res.output  # repairs are counted by reason


def test_an_unknown_language_is_one_clear_line(tmp_path: Path) -> None:
    from character.cli import app

    res = CliRunner().invoke(
        app, ["data", "clean", str(MIXED), "-o", str(tmp_path / "k.jsonl"), "--language", "xx"]
    )
    assert res.exit_code == 2 and "--language 'xx'" in res.output
    assert not (tmp_path / "k.jsonl").exists()
