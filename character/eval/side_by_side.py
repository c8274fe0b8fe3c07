"""DPO-only vs final, side by side: what introspection + SFT added to the voice DPO taught.

Every pipeline run has both models (`dpo/merged` and the final merge), so the eval stage lets the
DPO-only model answer the same held-out prompts, with the same sampling seed and no system prompt, and
puts the three columns (base, DPO-only, final) next to each other: marker rate, opener-only and
sustained rates, markers per 100 words, the most common opener and its share, and the robustness
headline figures when the robustness step ran. The sustained rate of DPO-only vs final is also a
paired comparison (`capability.paired_difference`: the same prompts on both sides, 95 % bootstrap
interval, McNemar), so "SFT helped" is a verdict with an interval, not a difference of two noisy rates.

Pure: in go replies and the robustness document; out comes a JSON-ready dict, flat manifest metrics and
markdown lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from character.eval.capability import paired_difference
from character.eval.markers import reply_markers

COLUMNS = ("before", "dpo_only", "after")
HEADERS = {"before": "base", "dpo_only": "DPO only", "after": "final"}
ROWS = (
    ("marker_rate", "replies with a marker"),
    ("opener_only_rate", "marker only in the opener"),
    ("sustained_rate", "marker after the opener (sustained)"),
    ("markers_per_100_words", "markers per 100 words"),
    ("stock_opener_share", "most common opener's share"),
)
ROBUSTNESS_ROWS = (
    ("default_f1", "robustness: classifier F1, unmodified prompts"),
    ("suffix_f1", "robustness: F1 under 'stop role-playing' suffixes"),
    ("prefill_f1", "robustness: F1 after a prefilled base turn"),
)


def sustained_flags(replies: Sequence[str], markers: Sequence[str], opener_words: int) -> list[bool]:
    return [bool(reply_markers(t, list(markers), opener_words)["sustained"]) for t in replies]


def compare(
    strength: dict[str, dict[str, Any]],
    replies: Mapping[str, Sequence[str]],
    markers: Sequence[str],
    opener_words: int,
    *,
    robustness: dict[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The side-by-side table. `strength` and `replies` are keyed by side (before, dpo_only, after);
    `robustness` is the eval stage's flat robustness metrics (`robustness_{dpo_only|full}_*`)."""
    sides = [s for s in COLUMNS if s in strength]
    table = {key: {s: strength[s][key] for s in sides} for key, _ in ROWS}
    table["stock_opener"] = {s: strength[s]["stock_opener"] for s in sides}
    rob = robustness or {}
    for key, _ in ROBUSTNESS_ROWS:
        row = {
            side: rob[f"robustness_{name}_{key}"]
            for side, name in (("dpo_only", "dpo_only"), ("after", "full"))
            if f"robustness_{name}_{key}" in rob
        }
        if row:
            table[f"robustness_{key}"] = row
    out: dict[str, Any] = {"columns": sides, "table": table}
    if "dpo_only" in replies and "after" in replies:
        # Paired by prompt: the final model vs the DPO-only model on the same held-out prompts.
        out["sustained_final_vs_dpo_only"] = paired_difference(
            sustained_flags(replies["dpo_only"], markers, opener_words),
            sustained_flags(replies["after"], markers, opener_words),
            min_items=min(100, len(replies["after"])),
            seed=seed,
        )
    return out


def metrics(doc: dict[str, Any]) -> dict[str, float]:
    """Flat manifest figures: `<row>_<side>` for the rows the stage's metrics do not hold yet, and the
    paired sustained difference (final - DPO-only) with its interval."""
    out: dict[str, float] = {}
    for key in ("marker_rate", "sustained_rate", "opener_only_rate", "stock_opener_share"):
        for side, v in doc["table"].get(key, {}).items():
            out[f"{key}_{side}"] = v
    paired = doc.get("sustained_final_vs_dpo_only")
    if paired:
        out["sustained_gain_over_dpo_only"] = paired["difference"]
        if paired.get("ci_low") is not None:
            out["sustained_gain_ci_low"] = paired["ci_low"]
            out["sustained_gain_ci_high"] = paired["ci_high"]
    return out


def markdown(doc: dict[str, Any]) -> list[str]:
    """The table as markdown lines (the run report and the eval log)."""
    sides = doc["columns"]
    lines = [
        "| | " + " | ".join(HEADERS[s] for s in sides) + " |",
        "|---|" + "---|" * len(sides),
    ]
    labels = dict(ROWS) | {f"robustness_{k}": v for k, v in ROBUSTNESS_ROWS}
    for key, label in labels.items():
        row = doc["table"].get(key)
        if not row:
            continue
        cells = [_cell(row.get(s)) for s in sides]
        if key == "stock_opener_share":
            cells = [
                f'{c} ("{doc["table"]["stock_opener"].get(s, "")}")' if s in row else c
                for s, c in zip(sides, cells, strict=True)
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    paired = doc.get("sustained_final_vs_dpo_only")
    if paired and paired.get("ci_low") is not None:
        lines.append("")
        lines.append(
            f"Sustained rate, final - DPO only: {paired['difference']:+.2f} "
            f"(95 % CI [{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}], McNemar p "
            f"{paired['mcnemar_p']:.3g}, n = {paired['n']}): {paired['verdict']}"
        )
    return lines


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)
