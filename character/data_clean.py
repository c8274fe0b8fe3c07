"""`character data clean`: the online filters, offline, on any JSONL of conversations or DPO pairs.

Input rows are recognised by shape:
- DPO pairs: `prompt` / `chosen` / `rejected`, each a message list (TRL's conversational form, as
  `pairs.jsonl` stores them) or a plain string. The chosen side is checked as `dpo_chosen`, the
  rejected side as `dpo_rejected`; identical sides are dropped as `identical`.
- Conversations: `messages` (reflections, self-interactions, any SFT rows). Every assistant turn is
  checked against the user turn before it and the row's system prompt; the row keeps its structure
  (all turns, same order). One failing turn rejects the row, naming the turn: the prior tool's cleaner
  instead cut every self-interaction down to its first line (prior-pipeline bug 14).

Kept rows are written unchanged apart from repaired text (a fake turn cut, a role label stripped).
Rejected rows go to the rejects file with the reason, the evidence, the line number and the original
row. The whole input is read and validated before anything is written, and both outputs are written
atomically: an invalid line stops the run with nothing half-written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.errors import DataError, UsageError
from character.filters import FilterContext, Verdict, check

Row = dict[str, Any]
ROW_KINDS = ("auto", "dpo", "reflection", "interaction", "generic")


@dataclass
class CleanOptions:
    """Knobs shared by every row (the rest comes from the row itself)."""

    kind: str = "auto"
    """Treat every row as this kind; `auto` reads it from the row's shape and `kind` field."""
    identity_names: tuple[str, ...] = ()
    """Names the model may call itself (never an identity leak)."""
    system_prompt: str = ""
    """System prompt the DPO chosen replies were generated with (rows do not store it)."""
    skip: frozenset[str] = frozenset()
    """Reason ids not to check."""
    rubric_labels: tuple[str, ...] = ()
    """Extra rubric line labels to treat as artefacts."""
    language: str = "en"
    """Language replies must be in (ISO 639-1; "" turns the language check off)."""

    def context(self, kind: str, prompt: str, system_prompt: str | None = None) -> FilterContext:
        """The filter context for one reply. `system_prompt=None` is the DPO rejected side: the base
        model wrote it without the persona's system prompt, so neither a copy of that prompt nor the
        persona's rubric labels are looked for in it."""
        persona = system_prompt is not None
        return FilterContext(
            kind=kind,
            prompt=prompt,
            system_prompt=system_prompt or "",
            identity_names=self.identity_names,
            rubric_labels=self.rubric_labels if persona else (),
            skip=self.skip,
            language=self.language,
        )


@dataclass
class CleanResult:
    rows: int = 0
    kept: int = 0
    repaired: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    """Kept rows by the reason of a defect repaired in them (a fake turn cut, a label stripped)."""
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return self.rows - self.kept


def read_rows(path: Path) -> list[Row]:
    """Every row of a JSONL file; a missing file or an invalid line is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist: pass an existing JSONL file")
    rows: list[Row] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n} is not valid JSON ({e.msg}): fix or remove that line") from e
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n} is a JSON {type(row).__name__}, not an object: one row per line")
            rows.append(row)
    return rows


def row_kind(row: Row, forced: str = "auto") -> str:
    if forced != "auto":
        return forced
    if "chosen" in row and "rejected" in row:
        return "dpo"
    if "messages" in row:
        k = row.get("kind")
        return k if k in ("reflection", "interaction") else "generic"
    raise DataError(
        f"row with keys {sorted(row)[:8]} is neither a DPO pair (prompt/chosen/rejected) nor a "
        "conversation (messages): convert it, or pass --kind"
    )


def row_id(row: Row) -> Any:
    if "id" in row:
        return row["id"]
    if "prompt_id" in row:
        return f"{row['prompt_id']}:{row.get('k', 0)}"
    return None


def side_text(value: Any, role: str, where: str) -> str:
    """The text of a DPO side: a string, or the last `role` message of a message list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        for m in reversed(value):
            if m.get("role") == role and isinstance(m.get("content"), str):
                return m["content"]
    raise DataError(f"{where} must be a string or a list of messages with a {role} turn, got {value!r:.80}")


def _with_text(value: Any, role: str, text: str) -> Any:
    if isinstance(value, str):
        return text
    out = [dict(m) for m in value]
    for m in reversed(out):
        if m.get("role") == role:
            m["content"] = text
            break
    return out


Reject = tuple[str, str, str, str]  # reason, detail, where, text


def _clean_pair(
    row: Row, opts: CleanOptions, run: Callable[[str, FilterContext], Verdict]
) -> tuple[Row, Reject | None]:
    prompt = side_text(row.get("prompt", ""), "user", "prompt") if row.get("prompt") else ""
    chosen = side_text(row["chosen"], "assistant", "chosen")
    rejected = side_text(row["rejected"], "assistant", "rejected")
    vc = run(chosen, opts.context("dpo_chosen", prompt, opts.system_prompt))
    if not vc.keep:
        return row, (f"chosen_{vc.reason}", vc.detail, "chosen", vc.text)
    vr = run(rejected, opts.context("dpo_rejected", prompt))
    if not vr.keep:
        return row, (f"rejected_{vr.reason}", vr.detail, "rejected", vr.text)
    if " ".join(vc.text.split()) == " ".join(vr.text.split()):
        return row, ("identical", "chosen and rejected are the same text", "chosen", vc.text)
    out = dict(row)
    if vc.repaired:
        out["chosen"] = _with_text(row["chosen"], "assistant", vc.text)
    if vr.repaired:
        out["rejected"] = _with_text(row["rejected"], "assistant", vr.text)
    return out, None


def _clean_conversation(
    row: Row, kind: str, opts: CleanOptions, run: Callable[[str, FilterContext], Verdict]
) -> tuple[Row, Reject | None]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"messages must be a non-empty list of {{role, content}}, got {messages!r:.80}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise DataError(f"messages[{i}] must be {{'role': ..., 'content': str}}, got {m!r:.80}")
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    fkind = kind if kind in ("reflection", "interaction") else "generic"
    new = list(messages)
    prompt = ""
    assistant_turns = 0
    for i, m in enumerate(messages):
        if m["role"] == "user":
            prompt = m["content"]
        if m["role"] != "assistant":
            continue
        assistant_turns += 1
        v = run(m["content"], opts.context(fkind, prompt, system))
        if not v.keep:
            return row, (str(v.reason), v.detail, f"messages[{i}]", m["content"])
        if v.repaired:
            new[i] = {**m, "content": v.text}
    if assistant_turns == 0:
        return row, (
            "no_assistant_turn",
            "the conversation has no assistant turn to train on",
            "messages",
            "",
        )
    out = dict(row)
    if new != messages:
        out["messages"] = new
    return out, None


def clean_rows(
    rows: list[Row],
    opts: CleanOptions | None = None,
    *,
    source: str = "input",
    progress: Callable[[], None] | None = None,
) -> tuple[list[Row], list[Row], CleanResult]:
    """Split rows into (kept, rejects, counts). Pure: no files read or written."""
    opts = opts or CleanOptions()
    if opts.kind not in ROW_KINDS:
        raise UsageError(f"--kind {opts.kind!r} is not known: use one of {', '.join(ROW_KINDS)}")
    res = CleanResult()
    kept: list[Row] = []
    rejects: list[Row] = []
    fixed: set[str] = set()

    def run(text: str, ctx: FilterContext) -> Verdict:
        v = check(text, ctx)
        if v.keep and v.repair:
            fixed.add(v.repair)
        return v

    for n, row in enumerate(rows, 1):
        res.rows += 1
        fixed.clear()
        try:
            kind = row_kind(row, opts.kind)
            if kind == "dpo":
                out, rej = _clean_pair(row, opts, run)
            else:
                out, rej = _clean_conversation(row, kind, opts, run)
        except DataError as e:
            raise DataError(f"{source} row {n}: {e}") from e
        except KeyError as e:
            raise DataError(
                f"{source} row {n}: missing key {e} for a {opts.kind} row: fix the row or --kind"
            ) from e
        res.by_kind[kind] += 1
        if rej is None:
            res.kept += 1
            res.repaired += out is not row
            res.repairs.update(fixed)
            kept.append(out)
        else:
            reason, detail, where, text = rej
            res.reasons[reason] += 1
            rejects.append(
                {"row": n, "id": row_id(row), "kind": kind, "where": where, "reason": reason, "detail": detail,
                 "text": text, "original": row}
            )  # fmt: skip
        if progress is not None:
            progress()
    return kept, rejects, res


def clean_file(
    src: Path,
    output: Path,
    rejects_path: Path | None,
    opts: CleanOptions | None = None,
    *,
    progress: bool = True,
) -> CleanResult:
    """Read `src`, filter, write kept rows to `output` and rejects to `rejects_path` (both atomic)."""
    from character.progress import progress_bar
    from character.records import write_jsonl

    src, output = Path(src), Path(output)
    if rejects_path is not None and Path(rejects_path).resolve() == output.resolve():
        raise UsageError(f"--rejects {rejects_path} is the same file as --output: give them different paths")
    rows = read_rows(src)
    with progress_bar(total=len(rows), description="cleaning", enabled=progress) as bar:
        kept, rejects, res = clean_rows(rows, opts, source=str(src), progress=lambda: bar.advance(1))
    # Rejects first: if the disk fills up, the kept file (what training reads) is not replaced half-way.
    if rejects_path is not None:
        write_jsonl(Path(rejects_path), rejects)
    write_jsonl(output, kept)
    return res
