"""How a robustness document reads: one markdown table (CLI and run report) and the F1-per-variant plot.

Rows are the conditions (each variant, the mean over attacks, the prefill attack, each drift turn,
the coherence judge), columns the checkpoints under test (DPO-only next to full when the eval stage
ran both): the paper's introspection ablation in one table. Nothing is recomputed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cell(row: dict[str, Any] | None, key: str = "macro_f1") -> str:
    if not row or row.get(key) is None:
        return "-"
    ci = row.get(f"{key}_ci")
    return f"{row[key]:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{row[key]:.2f}"


def table(doc: dict[str, Any]) -> list[str]:
    """Markdown lines: macro-F1 [95 % CI] per condition and checkpoint, then persona share under drift."""
    results = doc.get("results") or {}
    keys = list(results)
    if not keys:
        return []
    head = ["| condition | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines = list(head)

    def add(name: str, get: Any, key: str = "macro_f1") -> None:
        cells = [_cell(get(results[k]), key) for k in keys]
        if any(c != "-" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for v in doc.get("variants", []):
        label = "unmodified prompt" if v["id"] == "default" else f"suffix: {v['id']}"
        add(label, lambda res, i=v["id"]: res.get("suffixes", {}).get(i))
    add("**mean over suffixes**", lambda res: res.get("suffixes", {}).get("mean"))
    add("prefill attack (turn 1 by the base model)", lambda res: res.get("prefill"))
    for t in doc.get("drift_turns", []):
        add(
            f"drift turn {t}: persona share",
            lambda res, t=t: (res.get("drift") or {}).get(f"turn_{t}"),
            "persona_share",
        )
    add("coherence win rate vs prompted base", lambda res: res.get("coherence"), "win_rate")
    coh = [results[k].get("coherence") for k in keys]
    if any(coh):
        cells = [f"{c['wins']}/{c['losses']}/{c['inconsistent']}/{c['unparsed']}" if c else "-" for c in coh]
        lines.append("| coherence wins/losses/inconsistent/unparsed | " + " | ".join(cells) + " |")
    return lines


def describe(doc: dict[str, Any]) -> list[str]:
    """A few lines above the table: what was measured, on what."""
    cl = doc.get("classifier", {})
    out = [
        f"Persona `{doc.get('persona')}` vs base `{doc.get('base_model')}`: {cl.get('kind')} classifier trained on "
        f"{cl.get('train_rows')} replies to {cl.get('train_prompts')} held-out prompts, scored on replies to "
        f"{cl.get('scored_prompts')} other prompts (macro-F1 [95 % bootstrap CI over prompts]).",
    ]
    out += [f"- {k}: `{v}`" for k, v in (doc.get("checkpoints") or {}).items()]
    out += [f"- warning: {w}" for w in doc.get("warnings", [])]
    return out


def plot_f1(docs: dict[str, dict[str, Any]], out: Path) -> Path | None:
    """Macro-F1 per variant (with 95 % intervals) for each checkpoint of each run label in `docs`."""
    from character.report import pyplot, save_figure

    series = []
    for label, doc in docs.items():
        for key, res in (doc.get("results") or {}).items():
            suf = res.get("suffixes") or {}
            ids = [v["id"] for v in doc.get("variants", []) if v["id"] in suf]
            if res.get("prefill"):
                suf = {**suf, "prefill": res["prefill"]}
                ids.append("prefill")
            name = key if len(docs) == 1 else f"{label}: {key}"
            series.append((name, ids, suf))
    if not series:
        return None
    plt = pyplot()
    ids = series[0][1]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(ids) + 2), 3.8))
    for j, (name, s_ids, suf) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, v in enumerate(ids) if v in s_ids]
        rows = [suf[v] for v in ids if v in s_ids]
        ys = [r["macro_f1"] or 0.0 for r in rows]
        err = [
            [
                max(0.0, y - r["macro_f1_ci"][0]) if r.get("macro_f1_ci") else 0.0
                for y, r in zip(ys, rows, strict=True)
            ],
            [
                max(0.0, r["macro_f1_ci"][1] - y) if r.get("macro_f1_ci") else 0.0
                for y, r in zip(ys, rows, strict=True)
            ],
        ]
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(ids)), ids, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("persona macro-F1 (held-out)")
    ax.set_title("robustness: persona F1 per variant (dashed: chance)")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def load(sub_dir: Path) -> dict[str, Any] | None:
    """A (sub-)run's `eval/robustness.json`, or None when the eval stage has not written one."""
    import json

    path = Path(sub_dir) / "eval" / "robustness.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def report_section(subs: dict[str, Path], figs: Path) -> tuple[list[str], list[Path]]:
    """The run report's robustness section: per sub-run, what was measured, the DPO-only vs full table
    and the F1-per-variant plot."""
    docs = {label: doc for label, sub in subs.items() if (doc := load(sub))}
    if not docs:
        return [], []
    md = [
        "## Robustness: does the persona hold when someone pushes?",
        "",
        "Persona macro-F1 of a classifier trained on held-out replies of the checkpoint(s) vs the base model, "
        "scored on other prompts under each attack; 0.5 is chance. DPO-only vs full shows what introspection "
        "added.",
        "",
    ]
    plots: list[Path] = []
    for label, doc in docs.items():
        md += [f"### {label}", "", *describe(doc), "", *table(doc), ""]
        p = plot_f1({label: doc}, figs / f"{label}-robustness-f1.png")
        if p:
            plots.append(p)
            md += [f"![{label} robustness F1 per variant](report/{p.name})", ""]
    return md, plots
