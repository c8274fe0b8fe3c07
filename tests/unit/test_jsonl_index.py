"""The Studio's JSONL index: pages of a file a stage is still writing, search as JSON writes text, facets."""

from __future__ import annotations

import json
import os
from pathlib import Path

from character.studio.jsonl_index import IndexCache, JsonlIndex


def write(path: Path, rows: list[dict], tail: str = "", mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + tail)


def test_a_growing_file_is_indexed_from_where_the_last_scan_stopped(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    write(p, [{"i": i} for i in range(3)], tail='{"i": 3, "te')
    idx = JsonlIndex(p).refresh()
    assert len(idx) == 3 and idx.torn_bytes == len('{"i": 3, "te')
    scanned, starts = idx.end, idx.starts
    with open(p, "a") as f:  # the writer finishes the line and appends two more
        f.write('xt": "x"}\n{"i": 4}\n{"i": 5}\n')
    os.utime(p, ns=(1, 10**18))  # a new mtime, as a real append gives
    idx.refresh()
    assert len(idx) == 6 and idx.torn_bytes == 0 and idx.end > scanned
    assert idx.starts is starts  # extended, not rebuilt
    assert [r.data["i"] for r in idx.page(2, 10)] == [2, 3, 4, 5]


def test_a_rewritten_or_truncated_file_is_indexed_again(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    write(p, [{"i": i, "pad": "x" * 50} for i in range(10)])
    cache = IndexCache()
    assert len(cache.get(p)) == 10
    write(p, [{"i": 100 + i} for i in range(4)])  # a torn-line repair or an atomic rewrite
    idx = cache.get(p)
    assert len(idx) == 4 and [r.data["i"] for r in idx.page(0, 10)] == [100, 101, 102, 103]
    # Rewritten in place (same inode), longer, with a newline exactly where the old scan ended: the
    # old offsets must not be reused.
    end = p.stat().st_size
    first = json.dumps({"j": 0, "pad": "y" * 24}) + "\n"
    assert len(first) == end == 44
    with open(p, "r+") as f:
        f.write(first + "".join(json.dumps({"j": i}) + "\n" for i in range(1, 6)))
    os.utime(p, ns=(1, 10**18))
    assert [r.data["j"] for r in cache.get(p).page(0, 10)] == list(range(6))
    p.unlink()
    assert len(cache.get(p)) == 0


def test_search_matches_text_as_json_escapes_it(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    rows = [
        {"text": 'She said "no"\nthen left.'},
        {"text": "Crème brûlée, naïve café"},
        {"text": "nothing here"},
        {"text": "NO means no"},
    ]
    write(p, rows)
    idx = JsonlIndex(p).refresh()
    assert idx.search('said "no"\nthen') == [0]  # quotes and a newline inside a message
    assert idx.search("brûlée") == [1]  # UTF-8 as written with ensure_ascii=False
    assert idx.search("no") == [0, 2, 3]  # case-insensitive, one hit per row
    assert idx.search("absent") == [] and idx.search("  ") == [0, 1, 2, 3]
    assert [r.index for r in idx.page(1, 5, among=idx.search("no"))] == [2, 3]


def test_facets_and_malformed_rows(tmp_path: Path) -> None:
    p = tmp_path / "rejects.jsonl"
    write(
        p,
        [
            {"kind": "reflection", "reason": "phrase_loop"},
            {"kind": "interaction", "reason": "phrase_loop"},
            {"kind": "reflection", "reason": "refusal"},
        ],
    )
    with open(p, "a") as f:
        f.write("{not json}\n")
    idx = JsonlIndex(p).refresh()
    assert idx.facet("reason") == {"phrase_loop": [0, 1], "refusal": [2], "": [3]}
    assert idx.facet("kind", "reason")["reflection:phrase_loop"] == [0]
    bad = idx.page(3, 1)[0]
    assert bad.data is None and bad.error and "line 4 is not valid JSON" in bad.error
