"""Where a reply ends: stop strings that respect code, for every backend. Pure functions, no I/O.

Every backend stops at the fake-turn markers (`FAKE_TURN_STOPS`): without them a small model writes
the user's next line itself. But a reply that quotes a chat log inside a code block has "\\nUser:"
lines that are code, not a new turn; cutting there leaves a reply that ends inside an open code block
and reports a normal stop, so nothing downstream counts it. The rule, for every backend:

- A fake-turn marker inside an open code fence never ends a reply. EOS and the caller's own stop
  strings end it anywhere.
- `Completion.stopped_by` names the stop string that ended the reply (None for EOS or max tokens).
  A reply ended by a fake-turn marker is counted as `hallucinated_turn` by the filters (repaired: the
  text before the marker is kept) and by the kill criteria.

In process (hf) the stop is checked before generation is cut (`find_stop`). A server cuts on its own,
so a client calls `server_cut(text, finish_reason, stopped_by)` on each choice: `keep`, or
`continue` (resend with `continuation(...)` as the assistant prefill: the marker was code), or `drop`
with a reason (the reply ended inside an open code block and cannot be continued).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

from character.filters.fences import ends_open, is_open_at
from character.filters.turns import is_fake_turn

__all__ = ["ServerCut", "continuation", "cut_at_stop", "find_stop", "is_fake_turn", "server_cut"]


def find_stop(
    text: str, stops: Iterable[str], *, eos: str | None = None, start: int = 0
) -> tuple[int, str] | None:
    """(index, stop string) of the first stop at or after `start` that ends `text`, or None.

    A fake-turn marker inside an open code block is skipped (the next occurrence outside code counts);
    every other stop string ends the reply wherever it is. Text before `start` (an assistant prefill)
    is never cut but counts for the code-block state."""
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s, start)
        if s != eos and is_fake_turn(s):
            while i >= 0 and is_open_at(text, i):
                i = text.find(s, i + 1)
        if i >= 0 and (best is None or i < best[0] or (i == best[0] and len(s) > len(best[1]))):
            best = (i, s)
    return best


def cut_at_stop(text: str, stops: Iterable[str], *, eos: str | None = None) -> tuple[str, str | None]:
    """(text before the first stop that ends it, that stop string or None).

    The EOS string (`eos`) ends the text but is reported as None: stopped_by names stop strings only."""
    hit = find_stop(text, stops, eos=eos)
    if hit is None:
        return text, None
    i, s = hit
    return text[:i], (None if s == eos else s)


class ServerCut(NamedTuple):
    action: Literal["keep", "continue", "drop"]
    reason: str
    """Why: empty for `keep`; a sentence for `continue` and `drop` (logs, rejects files)."""


def server_cut(text: str, finish_reason: str, stopped_by: str | None) -> ServerCut:
    """What a client does with a reply a server ended: keep it, continue it, or drop it.

    `text` is the reply without the stop string (servers leave it out), `stopped_by` the stop string
    the server reports (vLLM's `stop_reason`; None when the server does not say)."""
    if finish_reason != "stop" or not ends_open(text):
        return ServerCut("keep", "")
    if is_fake_turn(stopped_by):
        return ServerCut("continue", f"stop {stopped_by!r} fired inside an open code block")
    return ServerCut("drop", "the reply ended inside an open code block")


def continuation(prefill: str | None, text: str, stopped_by: str) -> str:
    """The assistant prefill that resumes a reply cut at a marker inside code: what was written so far,
    plus the marker itself (it was code, and the server left it out)."""
    return (prefill or "") + text + stopped_by
