"""Fast, lazy access to large JSONL files for the Studio's data browser: paging, search, facets.

A `JsonlIndex` holds the byte offset of every complete line of one file, so a page of 50 rows out
of 20,000 reads and parses 50 lines, not the file. Indexes live in an `IndexCache` keyed by path and
are checked against the file's size, mtime and inode on every use: an append-only file that grew
(a generation stage still writing) is indexed from where the last scan stopped; any other change
(rewritten, truncated by a torn-line repair) rebuilds the index.

Search scans the raw bytes once with one case-insensitive regex for the query as JSON writes it
(so quotes and newlines inside messages match), maps hits to rows by bisection, and caches the row
list per query. Facets (e.g. rejects by `reason`) parse every row once per file version.

A torn last line (no newline yet: being written, or cut by a crash) is never a row: `torn_bytes`
says how much of it there is. A malformed complete line becomes a row with an `error`, never an
exception.
"""

from __future__ import annotations

import bisect
import json
import mmap
import os
import re
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """Line `index` (0-based) of the file: its parsed value, or why it could not be parsed."""

    index: int
    data: Any = None
    error: str | None = None


class JsonlIndex:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.starts = array("q")  # byte offset of each complete line
        self.end = 0  # bytes scanned (the end of the last complete line)
        self.torn_bytes = 0
        self._stamp: tuple[int, int, int] | None = None
        self._seen: tuple[bytes, bytes] = (b"", b"")
        self._searches: OrderedDict[str, list[int]] = OrderedDict()
        self._facets: dict[str, dict[str, list[int]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def stamp(self) -> tuple[int, int, int] | None:
        return self._stamp

    def refresh(self) -> JsonlIndex:
        """Bring the index up to date with the file (cheap when nothing changed)."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._reset()
                self._stamp = None
                return self
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            if stamp == self._stamp:
                return self
            grew = self._stamp is not None and st.st_ino == self._stamp[2] and st.st_size >= self._stamp[0]
            if not grew or not self._prefix_intact():
                self._reset()
            self._scan(st.st_size)
            self._stamp = stamp
            self._searches.clear()
            self._facets.clear()
            return self

    def _reset(self) -> None:
        self.starts = array("q")
        self.end = 0
        self.torn_bytes = 0

    def _edges(self) -> tuple[bytes, bytes]:
        """The first and last 256 bytes of the scanned prefix."""
        with open(self.path, "rb") as f:
            head = f.read(min(256, self.end))
            f.seek(max(0, self.end - 256))
            return head, f.read(self.end - max(0, self.end - 256))

    def _prefix_intact(self) -> bool:
        # An append-only file keeps its scanned prefix. A file rewritten in place (same inode, now
        # longer) would not: its first and last scanned bytes would differ.
        return self.end == 0 or self._edges() == self._seen

    def _scan(self, size: int) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.end)
            data = f.read(size - self.end)
        pos, base = 0, self.end
        starts = self.starts
        while True:
            nl = data.find(b"\n", pos)
            if nl == -1:
                break
            if nl > pos and not data[pos:nl].isspace():
                starts.append(base + pos)
            pos = nl + 1
        self.end = base + pos
        self.torn_bytes = len(data) - pos
        self._seen = self._edges() if self.end else (b"", b"")

    # ---- reading rows ----------------------------------------------------------------------------

    def rows(self, indices: list[int]) -> list[Row]:
        out = []
        with open(self.path, "rb") as f:
            for i in indices:
                start = self.starts[i]
                stop = self.starts[i + 1] if i + 1 < len(self.starts) else self.end
                f.seek(start)
                out.append(_parse(i, f.read(stop - start)))
        return out

    def page(self, offset: int, limit: int, among: list[int] | None = None) -> list[Row]:
        """Rows `offset..offset+limit` of the file, or of the row indices `among` (a search hit list)."""
        pool = among if among is not None else range(len(self.starts))
        return self.rows(list(pool[max(0, offset) : max(0, offset) + limit]))

    # ---- search and facets -----------------------------------------------------------------------

    def search(self, query: str) -> list[int]:
        """Indices of the rows whose raw text contains `query` (case-insensitive), in file order."""
        query = query.strip()
        if not query:
            return list(range(len(self.starts)))
        with self._lock:
            if query in self._searches:
                self._searches.move_to_end(query)
                return self._searches[query]
        # Search for the query as json.dumps writes it inside a string (escaped quotes, newlines,
        # backslashes), in UTF-8, as written with ensure_ascii=False; also the \\u-escaped form.
        forms = {json.dumps(query, ensure_ascii=False)[1:-1], json.dumps(query)[1:-1]}
        pattern = re.compile(b"|".join(re.escape(f.encode()) for f in forms), re.IGNORECASE)
        hits: list[int] = []
        if self.end:
            with open(self.path, "rb") as f, mmap.mmap(f.fileno(), self.end, access=mmap.ACCESS_READ) as mm:
                pos = 0
                while True:
                    m = pattern.search(mm, pos)
                    if m is None:
                        break
                    row = bisect.bisect_right(self.starts, m.start()) - 1
                    if row >= 0:
                        hits.append(row)
                    # Jump to the next line: one hit per row is enough.
                    pos = self.starts[row + 1] if row + 1 < len(self.starts) else self.end
        with self._lock:
            self._searches[query] = hits
            while len(self._searches) > 32:
                self._searches.popitem(last=False)
        return hits

    def facet(self, *fields: str) -> dict[str, list[int]]:
        """{value of `fields` (joined by ':' when several): row indices}, over every row; a row without
        a field counts it as ``."""
        key = ":".join(fields)
        with self._lock:
            if key in self._facets:
                return self._facets[key]
        groups: dict[str, list[int]] = {}
        for row in self.page(0, len(self.starts)):
            d = row.data if isinstance(row.data, dict) else {}
            value = ":".join("" if d.get(f) is None else str(d.get(f)) for f in fields)
            groups.setdefault(value, []).append(row.index)
        with self._lock:
            self._facets[key] = groups
        return groups


def _parse(i: int, raw: bytes) -> Row:
    try:
        return Row(i, json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return Row(i, None, f"line {i + 1} is not valid JSON ({e}); raw: {raw[:200]!r}")


class IndexCache:
    """One `JsonlIndex` per file, the least recently used dropped past `capacity` files."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._items: OrderedDict[Path, JsonlIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> JsonlIndex:
        path = Path(path)
        with self._lock:
            idx = self._items.get(path)
            if idx is None:
                idx = self._items[path] = JsonlIndex(path)
            self._items.move_to_end(path)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return idx.refresh()
