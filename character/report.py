"""The run report: `report.md` and `report.html` (with matplotlib plots) built from a run's files alone.

In: a run directory (see `character/runner.py`), read-only apart from the report files. Out:
`report.md`, `report.html` (plots embedded) and `report/*.png`:
  - stage table per (sub-)run: status, duration, counts, drops;
  - loss and DPO reward-accuracy curves from each training stage's `metrics.jsonl`;
  - drop reasons per stage (from `stats.json`, else the manifest);
  - persona-marker rates before/after (from the eval stage's output);
  - tokens and USD per stage and model (`cost.json`, else the manifests).
Nothing here reads or recomputes a metric itself: every number comes from `character.runs`, the one
reader that `runs show` and the Studio use too. Rebuild a report with
`character runs show RUN --report`.
"""

from __future__ import annotations

import base64
import html
import logging
import time
from pathlib import Path
from typing import Any

from character.runs import (
    cost_rows,
    curve,
    drop_reasons,
    marker_rates,
    read_metrics,
    role_cost_rows,
    stage_rows,
    subrun_dirs,
)
from character.runs import state as run_state

log = logging.getLogger(__name__)

# ---- plots ----------------------------------------------------------------------------------------


def pyplot():  # type: ignore[no-untyped-def]
    """matplotlib.pyplot on the file-only Agg backend (runs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> Path:  # type: ignore[no-untyped-def]
    """Lay out, write and free one figure (every report and ablation plot ends this way)."""
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    pyplot().close(fig)
    return out


def plot_training(sub_dir: Path, out: Path, title: str) -> Path | None:
    dpo = read_metrics(sub_dir / "dpo" / "metrics.jsonl")
    sft = read_metrics(sub_dir / "sft" / "metrics.jsonl")
    if not dpo and not sft:
        return None
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for rows, name in ((dpo, "DPO"), (sft, "SFT")):
        xs, ys = curve(rows, "loss")
        if xs:
            ax1.plot(xs, ys, marker="o", ms=3, label=f"{name} loss")
        xs, ys = curve(rows, "eval_loss")
        if xs:
            ax1.plot(xs, ys, ls="--", marker="x", label=f"{name} held-out loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_title("training loss")
    ax1.legend(fontsize=8)
    xs, ys = curve(dpo, "rewards/accuracies")
    if xs:
        ax2.plot(xs, ys, marker="o", ms=3, color="tab:green", label="reward accuracy")
    xs, ys = curve(dpo, "rewards/margins")
    if xs:
        ax2b = ax2.twinx()
        ax2b.plot(xs, ys, color="tab:purple", alpha=0.6, label="reward margin")
        ax2b.set_ylabel("margin")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_xlabel("step")
    ax2.set_ylabel("accuracy")
    ax2.set_title("DPO reward accuracy")
    fig.suptitle(title)
    return save_figure(fig, out)


def plot_drops(drops: dict[str, dict[str, int]], out: Path, title: str) -> Path | None:
    items = [(f"{stage}: {reason}", n) for stage, d in drops.items() for reason, n in d.items() if n]
    if not items:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [n for _, n in items], color="tab:red")
    ax.invert_yaxis()
    ax.set_xlabel("rows dropped")
    ax.set_title(title)
    return save_figure(fig, out)


def plot_markers(rates: dict[str, dict[str, float]], out: Path) -> Path | None:
    if not rates:
        return None
    plt = pyplot()
    labels = list(rates)
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(4, 1.8 * len(labels)), 3.4))
    ax.bar([i - 0.2 for i in x], [rates[k]["before"] for k in labels], width=0.4, label="before (base)")
    ax.bar([i + 0.2 for i in x], [rates[k]["after"] for k in labels], width=0.4, label="after (trained)")
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of replies with a marker")
    ax.set_title("persona markers on held-out prompts, no system prompt")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


# ---- the report -----------------------------------------------------------------------------------


def _fmt_counts(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def build(run_dir: Path) -> tuple[list[str], list[Path]]:
    """Markdown lines and the plot files they reference."""
    run_dir = Path(run_dir)
    figs = run_dir / "report"
    figs.mkdir(exist_ok=True)
    state = run_state(run_dir)
    chash = (
        (run_dir / "config_hash.txt").read_text().strip() if (run_dir / "config_hash.txt").exists() else "?"
    )
    md = [
        f"# Run report: {run_dir.name}",
        "",
        f"- persona: **{state.get('persona', '?')}**; status: **{state.get('status', '?')}**",
        f"- config hash: `{chash}` (resolved_config.toml)",
        f"- written: {time.strftime('%Y-%m-%d %H:%M:%S')}",
    ]
    if state.get("error"):
        md.append(f"- error: {state['error']}")
    md.append("")
    plots: list[Path] = []
    rates: dict[str, dict[str, float]] = {}
    total_usd, total_tokens = 0.0, 0
    cost_md: list[str] = []
    role_md: list[str] = []  # the same tokens by role (teacher, student, introspect, judge, ...)
    for label, sub in subrun_dirs(run_dir):
        md += [
            f"## {label}",
            "",
            "| stage | status | duration s | counts | dropped |",
            "|---|---|---|---|---|",
        ]
        drops: dict[str, dict[str, int]] = {}
        for r in stage_rows(sub):
            dur = f"{r['duration_s']:.1f}" if isinstance(r["duration_s"], int | float) else "-"
            status = r["status"] + (f" ({r['error']})" if r["error"] and r["status"] != "done" else "")
            md.append(
                f"| {r['stage']} | {status} | {dur} | {_fmt_counts(r['counts'])} | {_fmt_counts(r['dropped'])} |"
            )
            if r["stage"] in ("distill", "introspect", "dpo", "sft") and (sub / r["stage"]).is_dir():
                d = drop_reasons(sub / r["stage"])
                if d:
                    drops[r["stage"]] = d
        md.append("")
        p = plot_training(sub, figs / f"{label}-training.png", f"{label}: training curves")
        if p:
            plots.append(p)
            md += [f"![{label} training curves](report/{p.name})", ""]
        p = plot_drops(drops, figs / f"{label}-drops.png", f"{label}: drop reasons")
        if p:
            plots.append(p)
            md += [f"![{label} drop reasons](report/{p.name})", ""]
        mr = marker_rates(sub)
        if mr:
            rates[label] = mr
        for stage, model, pt, ct, usd in cost_rows(sub):
            cost_md.append(f"| {label} | {stage} | {model} | {pt:,} | {ct:,} | {usd:.4f} |")
            total_usd += usd
            total_tokens += pt + ct
        for stage, role, model, pt, ct, usd in role_cost_rows(sub):
            role_md.append(f"| {label} | {stage} | {role} | {model} | {pt:,} | {ct:,} | {usd:.4f} |")
    if rates:
        md += [
            "## Persona markers (held-out prompts, no system prompt)",
            "",
            "| run | before | after | lift (points) |",
            "|---|---|---|---|",
        ]
        for label, r in rates.items():
            n = f" (n={int(r['n_after'])})" if "n_after" in r else ""
            md.append(
                f"| {label} | {r['before']:.3f} | {r['after']:.3f}{n} | {100 * (r['after'] - r['before']):+.1f} |"
            )
        md.append("")
        p = plot_markers(rates, figs / "markers.png")
        if p:
            plots.append(p)
            md += [f"![marker rates](report/{p.name})", ""]
    # Forgetting (#13): probe accuracy base / prompt-only / trained with the paired verdict, per sub-run.
    from character.eval.forgetting import REPORT_HEADER, report_row

    forgetting = [row for label, sub in subrun_dirs(run_dir) if (row := report_row(label, sub / "eval"))]
    if forgetting:
        md += REPORT_HEADER + forgetting + [""]
    # Robustness: F1 per variant and DPO-only vs full, from each sub-run's eval/robustness.json.
    from character.eval.robustness.report import report_section

    rob_md, rob_plots = report_section(dict(subrun_dirs(run_dir)), figs)
    md += rob_md
    plots += rob_plots
    md += ["## Tokens and cost", ""]
    if cost_md:
        md += [
            "| run | stage | model | prompt tokens | completion tokens | USD |",
            "|---|---|---|---|---|---|",
        ]
        md += cost_md
    md += ["", f"**Total: {total_tokens:,} tokens, ${total_usd:.4f}**", ""]
    if role_md:
        md += [
            "### By role",
            "",
            "| run | stage | role | model | prompt tokens | completion tokens | USD |",
            "|---|---|---|---|---|---|---|",
            *role_md,
            "",
        ]
    return md, plots


def _md_to_html(lines: list[str], run_dir: Path) -> str:
    """The report's own small markdown subset (headings, bullets, tables, images) as HTML."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}</style></head><body>",
    ]
    in_table = in_list = False
    for line in lines:
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            data = base64.b64encode((run_dir / src.rstrip(")")).read_bytes()).decode()
            out.append(f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    import re

    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def write_report(run_dir: Path) -> tuple[Path, Path]:
    from character.atomic import atomic_write_text

    run_dir = Path(run_dir)
    lines, _ = build(run_dir)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    atomic_write_text(html_path, _md_to_html(lines, run_dir))
    log.info("report: %s", md_path)
    return md_path, html_path
