"""What a command prints: short tables and a few samples for people, the full document for machines.

Commands that produce a result document (`audit`, `eval *`, `runs show`, `checkpoint list`) print a
headline, rich tables and a few samples by default, and with `--json` the whole document as JSON on
stdout (nothing else there: logs go to stderr), so `character audit --json | jq .score` works. Exit
codes do not depend on the format.

`overview(doc)` renders any JSON-like document (top-level scalars as a key/value table, a mapping of
records as a table, lists of prompt/reply rows as samples), so a field added to a result later shows
up without a change here; a command adds a headline and picks which rows are its samples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import zip_longest
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the full result as JSON (for scripts) instead of tables.")
]

SAMPLES = 3  # samples shown by default; --json has them all
MAX_ROWS = 20
MAX_COLS = 8
SAMPLE_CHARS = 400
TEXT_KEYS = ("prompt", "reply", "text", "chosen", "rejected", "reply_a", "reply_b", "response", "answer")


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


def print_json(doc: Any) -> None:
    """The document on stdout, unwrapped (a terminal width must never break a JSON string)."""
    typer.echo(dumps(doc))


def show(renderables: Iterable[RenderableType]) -> None:
    from character.cli import console

    for r in renderables:
        console.print(r)


def emit(doc: Any, json_out: bool, view: Iterable[RenderableType] | None = None, title: str = "") -> None:
    """`--json`: the document; otherwise `view` (default: `overview(doc, title)`)."""
    if json_out:
        print_json(doc)
    else:
        show(view if view is not None else overview(doc, title))


# --- cells ---------------------------------------------------------------------------------------


def cell(v: Any) -> str:
    """One value as a short table cell."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return f"{{{len(v)} fields}}"
    if isinstance(v, list | tuple):
        if all(_scalar(x) for x in v) and len(v) <= 8:
            return ", ".join(cell(x) for x in v)
        return f"[{len(v)} items]"
    s = " ".join(str(v).split())
    return s if len(s) <= 120 else s[:117] + "..."


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _plain(text: str) -> Text:
    return Text(text)  # never rich markup: results hold arbitrary model text with [brackets]


def kv_table(title: str, rows: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Table:
    t = Table(title=title or None, show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("")
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    for k, v in items[:MAX_ROWS]:
        t.add_row(_plain(str(k)), _plain(cell(v)))
    if len(items) > MAX_ROWS:
        t.add_row("...", f"{len(items) - MAX_ROWS} more (--json)")
    return t


def records_table(title: str, rows: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]) -> Table:
    """A table of records: a mapping name -> record (first column: the name) or a list of records.
    Fields most records have get a column; the rest go into one `other` column as k=v."""
    named = isinstance(rows, Mapping)
    recs = list(rows.items()) if isinstance(rows, Mapping) else [(None, r) for r in rows]
    seen: dict[str, int] = {}
    for _, r in recs:
        for k, v in r.items():
            if (_scalar(v) or _short_list(v)) and k not in TEXT_KEYS[1:]:
                seen[k] = seen.get(k, 0) + 1
    cols = [k for k, n in seen.items() if 2 * n >= len(recs)][:MAX_COLS]
    rest = [k for k in seen if k not in cols]
    t = Table(title=title or None, title_justify="left")
    if named:
        t.add_column("", overflow="fold")
    for c in cols:
        t.add_column(c, overflow="fold")
    if rest:
        t.add_column("other", overflow="fold")
    for name, r in recs[:MAX_ROWS]:
        other = ", ".join(f"{k}={cell(r[k])}" for k in rest if k in r)
        t.add_row(
            *([_plain(str(name))] if named else []),
            *(_plain(cell(r.get(c))) for c in cols),
            *([_plain(other)] if rest else []),
        )
    if len(recs) > MAX_ROWS:
        t.caption = f"{len(recs) - MAX_ROWS} more rows: --json"
    return t


def sample_panels(
    title: str, rows: Sequence[Mapping[str, Any]], n: int = SAMPLES, keys: Sequence[str] = TEXT_KEYS
) -> list[RenderableType]:
    """The first `n` rows that hold text (`keys`: prompt, reply, ...), each as a small panel."""
    out: list[RenderableType] = []
    shown = [r for r in rows if isinstance(r, Mapping) and any(isinstance(r.get(k), str) for k in keys)]
    for r in shown[:n]:
        body = Text()
        for k in keys:
            v = r.get(k)
            if isinstance(v, list) and v and isinstance(v[-1], Mapping):  # a message list
                v = v[-1].get("content")
            if isinstance(v, str):
                v = " ".join(v.split())
                body.append(f"{k}: ", style="bold")
                body.append((v if len(v) <= SAMPLE_CHARS else v[: SAMPLE_CHARS - 3] + "...") + "\n")
        extra = [f"{k}={cell(v)}" for k, v in r.items() if k not in keys and _scalar(v)][:6]
        body.rstrip()  # in place
        out.append(
            Panel(body if body.plain else Text("-"), subtitle=" ".join(extra) or None, subtitle_align="left")
        )
    if out:
        more = f" ({len(shown) - n} more: --json)" if len(shown) > n else ""
        out.insert(0, Text(f"{title}{more}", style="bold"))
    return out


def _is_samples(v: Any) -> bool:
    return (
        isinstance(v, list)
        and bool(v)
        and all(isinstance(r, Mapping) for r in v)
        and any(isinstance(v[0].get(k), str | list) for k in TEXT_KEYS)
    )


def overview(doc: Any, title: str = "", *, skip: Iterable[str] = ()) -> list[RenderableType]:
    """Any result document as tables and samples (see the module doc); `skip` leaves keys out."""
    if not isinstance(doc, Mapping):
        return [_plain(cell(doc))]
    skip = set(skip)
    out: list[RenderableType] = []
    scalars = [(k, v) for k, v in doc.items() if k not in skip and (_scalar(v) or _short_list(v))]
    if scalars:
        out.append(kv_table(title, scalars))
    for k, v in doc.items():
        if k in skip or _scalar(v) or _short_list(v):
            continue
        if isinstance(v, Mapping) and v and all(isinstance(x, Mapping) for x in v.values()):
            if all(all(_scalar(y) or isinstance(y, list) for y in x.values()) for x in v.values()):
                out.append(records_table(k, v))
            else:  # one level deeper (e.g. {"judge": {"before": {...}, "after": {...}}})
                out.extend(overview(v, k))
        elif isinstance(v, Mapping) and v:
            out.extend(overview(v, k))
        elif _is_samples(v):
            out.extend(sample_panels(k, v))
        elif isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v):
            out.append(records_table(k, v))
        elif isinstance(v, list) and v:
            out.append(kv_table(k, [(str(i + 1), x) for i, x in enumerate(v)]))
    return out


def _short_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) <= 8 and all(_scalar(x) for x in v)


def headline(text: str, style: str = "bold") -> Text:
    return Text(text, style=style)


def footer(output_option: bool = True) -> Text:
    return Text("the full result: --json" + (" (or --output FILE)" if output_option else ""), style="dim")


# --- views of the evaluation results -------------------------------------------------------------


def audit_view(rep: Mapping[str, Any]) -> list[RenderableType]:
    """Score and components, defect counts, then the worst samples (a few per defect)."""
    score = rep.get("score")
    head = (
        f"quality audit: {cell(score)}/100 on {rep.get('n', '?')} held-out replies of {rep.get('model', '?')}"
    )
    out: list[RenderableType] = [headline(head)]
    if isinstance(rep.get("components"), Mapping):
        out.append(records_table("components", rep["components"]))
    if rep.get("defect_counts"):
        out.append(kv_table("defects", rep["defect_counts"]))
    # One example of each defect in turn, so three samples show three different failures.
    by_defect = [
        [{"defect": d, **row} for row in rows if isinstance(row, Mapping)]
        for d, rows in (rep.get("examples") or {}).items()
        if isinstance(rows, list)
    ]
    worst = [r for tier in zip_longest(*by_defect) for r in tier if r is not None]
    out += sample_panels("worst samples", worst) or sample_panels("samples", rep.get("replies") or [])
    return [*out, footer()]


def markers_view(doc: Mapping[str, Any]) -> list[RenderableType]:
    rate, n = doc.get("marker_rate"), doc.get("n")
    head = (
        f"persona markers without a system prompt: {cell(rate)} of {n} replies "
        f"({doc.get('model', '?')}, persona {doc.get('persona', '?')})"
    )
    return [
        headline(head),
        *overview(doc, "character strength", skip=("replies", "system_prompt")),
        *sample_panels("samples", doc.get("replies") or []),
        footer(),
    ]


def compare_view(rep: Mapping[str, Any]) -> list[RenderableType]:
    rec = str(rep.get("recommendation", "?"))
    style = {"promote": "bold green", "reject": "bold red"}.get(rec, "bold yellow")
    out: list[RenderableType] = [headline(f"recommendation: {rec}", style)]
    out += [_plain(f"- {r}") for r in rep.get("reasons") or []]
    if isinstance(rep.get("summary"), Mapping):
        out += overview(rep["summary"], "summary")
    if rep.get("evidence"):
        out.append(_plain(f"evidence: {rep['evidence']}"))
    return [*out, footer()]


def result_view(doc: Mapping[str, Any], title: str, head: str = "") -> list[RenderableType]:
    """A generic result: an optional headline, the overview, the --json hint."""
    return [*([headline(head)] if head else []), *overview(doc, title), footer()]
