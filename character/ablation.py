"""Data-scale ablation: how much data does the character need?

Sequential (default; the seed report found it gives the same insight at a third of the cost):
  1. `100pct/` runs the whole pipeline at 100 % (smoke runs first, as configured);
  2. every smaller scale `{pct}pct/` takes a nested subset of that run's DPO pairs and introspection
     rows (a seeded permutation, so 25 % is inside 50 % is inside 75 %), written as finished distill
     and introspect stages, and trains dpo -> sft -> merge -> eval on it. Checkpoints are registered
     as `{persona}_{pct}pct_dpo` / `{persona}_{pct}pct_sft`.
  Trade-off, stated in the summary: the smaller scales' introspection rows were written by the
  100 % DPO model, not by their own.
Parallel: one independent pipeline per scale (`character pipeline ... --name-suffix {pct}pct` in its
own process, sizes multiplied by the share), for settings that cannot share data.

Both end with `ablation.md`, `ablation.json` and `ablation.png` in the ablation directory: data
counts, final losses, marker rates and cost per scale.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

from character import layout, paths
from character.atomic import atomic_write_json, atomic_write_text
from character.config import RunConfig
from character.config_layers import Resolved, config_hash
from character.manifest import Manifest, read_manifest, write_manifest
from character.records import read_jsonl, write_jsonl
from character.runner import Runner, write_config
from character.runs import marker_rates, read_metrics

log = logging.getLogger(__name__)


def nested_subset(
    rows: list[dict[str, Any]], share: float, seed: int, group: str | None = None
) -> list[dict[str, Any]]:
    """The first `share` of a seeded permutation (per `group` value), in the original order.

    The same seed gives the same permutation, so a smaller share is always inside a larger one.
    """
    groups: dict[Any, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.get(group) if group else None, []).append(i)
    keep: list[int] = []
    for key in sorted(groups, key=str):
        idx = groups[key]
        order = random.Random(f"{seed}:{key}").sample(idx, len(idx))
        keep += order[: max(1, math.ceil(len(idx) * share))] if idx else []
    return [rows[i] for i in sorted(keep)]


def scale_config(cfg: RunConfig, pct: int, *, smoke: bool) -> RunConfig:
    data = cfg.model_dump(mode="json")
    data["name_suffix"] = f"{pct}pct"
    data["distill"]["pairs"] = max(1, math.ceil(cfg.distill.pairs * pct / 100))
    data["introspect"]["reflections"] = math.ceil(cfg.introspect.reflections * pct / 100)
    data["introspect"]["interactions"] = math.ceil(cfg.introspect.interactions * pct / 100)
    if not smoke:
        data["pipeline"]["smoke"] = "none"
    data["pipeline"]["report"] = True
    return RunConfig.model_validate(data)


def _derive(src_run: Path, dst_run: Path, cfg: RunConfig, share: float) -> None:
    """Write finished distill and introspect stages holding nested subsets of the 100 % run's data.

    A data stage the 100 % run has not finished (`--until distill` or `--until dpo`) is not derived."""
    for stage, path_of, group in (
        ("distill", layout.pairs_file, None),
        ("introspect", layout.introspection_file, "kind"),
    ):
        if read_manifest(dst_run / stage) is not None or read_manifest(src_run / stage) is None:
            continue
        rows = read_jsonl(path_of(src_run))
        subset = nested_subset(rows, share, cfg.seed, group)
        sd = layout.stage_dir(dst_run, stage)
        write_jsonl(path_of(dst_run), subset)
        m = Manifest(stage=stage, config_hash=config_hash(cfg), seed=cfg.seed)
        m.counts = {"kept": len(subset), "source_rows": len(rows)}
        m.outputs = {"data": str(path_of(dst_run))}
        m.extra = {"subset_of": str(path_of(src_run)), "share": share}
        write_manifest(sd, m.finish())


def run_ablation(
    resolved: Resolved,
    *,
    root: Path | None = None,
    progress: bool = True,
    paper_scale: bool = False,
    scale: str | None = None,
    stages: Any = None,
    until: str | None = None,
) -> Path:
    cfg = resolved.config
    pcts = sorted(
        set(cfg.pipeline.ablation_scales) | ({100} if cfg.pipeline.ablation_mode == "sequential" else set())
    )
    if root is None:
        root = paths.runs_dir() / f"{cfg.persona}_ablation_{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "ablation_plan.json", {"mode": cfg.pipeline.ablation_mode, "scales": pcts})
    if cfg.pipeline.ablation_mode == "sequential":
        _sequential(resolved, root, pcts, progress, stages, until)
    else:
        _parallel(resolved, root, pcts, paper_scale, until)
    write_summary(root, pcts, cfg.pipeline.ablation_mode)
    return root


def _run(
    cfg: RunConfig,
    sources: dict[str, str],
    d: Path,
    progress: bool,
    stages: Any,
    start: str | None,
    until: str | None = None,
) -> None:
    if not (d / "resolved_config.toml").exists():
        d.mkdir(parents=True, exist_ok=True)
        write_config(d, cfg, sources)
    Runner(
        Resolved(cfg, sources), run_dir=d, start=start, until=until, stages=stages, progress=progress
    ).run()


def _sequential(
    resolved: Resolved, root: Path, pcts: list[int], progress: bool, stages: Any, until: str | None = None
) -> None:
    cfg = resolved.config
    full = root / "100pct"
    _run(scale_config(cfg, 100, smoke=True), resolved.sources, full, progress, stages, None, until)
    for pct in (p for p in pcts if p < 100):
        sub_cfg = scale_config(cfg, pct, smoke=False)
        d = root / f"{pct}pct"
        if not (d / "resolved_config.toml").exists():
            d.mkdir(parents=True, exist_ok=True)
            write_config(d, sub_cfg, resolved.sources)
        _derive(full, d, sub_cfg, pct / 100)
        if until == "distill":
            continue  # the subsets are the whole job: nothing of theirs is trained
        log.info("ablation %d%%: training on nested subsets of %s", pct, full)
        _run(sub_cfg, resolved.sources, d, progress, stages, "dpo", until)


def _parallel(
    resolved: Resolved, root: Path, pcts: list[int], paper_scale: bool, until: str | None = None
) -> None:
    from character.ablation_parallel import run_parallel

    def scale_dir(pct: int) -> Path:
        d = root / f"{pct}pct"
        if not (d / "resolved_config.toml").exists():
            d.mkdir(parents=True, exist_ok=True)
            write_config(d, scale_config(resolved.config, pct, smoke=True), resolved.sources)
        return d

    run_parallel(resolved, root, pcts, scale_dir, until=until)


def run_cost(d: Path) -> float:
    """USD a scale's run spent, its smoke runs included (each sub-run writes its own cost.json)."""
    total = 0.0
    for f in [d / "cost.json", *sorted(d.glob("smoke-*/cost.json"))]:
        try:
            total += float(json.loads(f.read_text()).get("usd", 0.0))
        except (OSError, ValueError):
            continue
    return total


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    for r in reversed(rows):
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def summarize(root: Path, pcts: list[int]) -> list[dict[str, Any]]:
    out = []
    for pct in pcts:
        d = root / f"{pct}pct"
        dm, im = read_manifest(d / "distill"), read_manifest(d / "introspect")
        rates = marker_rates(d) or {}
        cost = run_cost(d)
        out.append(
            {
                "pct": pct,
                "pairs": (dm.counts.get("kept") if dm else None),
                "introspection_rows": (im.counts.get("kept") if im else None),
                "dpo_final_loss": _last(read_metrics(d / "dpo" / "metrics.jsonl"), "loss"),
                "dpo_reward_accuracy": _last(read_metrics(d / "dpo" / "metrics.jsonl"), "rewards/accuracies"),
                "sft_final_loss": _last(read_metrics(d / "sft" / "metrics.jsonl"), "loss"),
                "marker_before": rates.get("before"),
                "marker_after": rates.get("after"),
                "cost_usd": cost,
            }
        )
    return out


def write_summary(root: Path, pcts: list[int], mode: str) -> list[dict[str, Any]]:
    rows = summarize(root, pcts)
    atomic_write_json(root / "ablation.json", rows)

    def f(v: Any, fmt: str = "{:.3f}") -> str:
        return "-" if v is None else fmt.format(v) if isinstance(v, float) else str(v)

    md = [
        f"# Ablation ({mode}): {root.name}",
        "",
        "| scale | pairs | introspection rows | DPO final loss | DPO reward acc | SFT final loss | "
        "markers before | markers after | cost USD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['pct']}% | {f(r['pairs'])} | {f(r['introspection_rows'])} | {f(r['dpo_final_loss'])} | "
            f"{f(r['dpo_reward_accuracy'])} | {f(r['sft_final_loss'])} | {f(r['marker_before'])} | "
            f"{f(r['marker_after'])} | {f(r['cost_usd'], '{:.4f}')} |"
        )
    total = sum(r["cost_usd"] for r in rows)
    cap = _ledger_cap(root)
    md += [
        "",
        f"Total cost of every run, smoke runs included: ${total:.4f}"
        + (f" of the shared ${cap:g} budget." if cap is not None else "."),
    ]
    if mode == "sequential":
        md += [
            "",
            "Sequential: data was generated once at 100 % (its cost is on the 100 % row); smaller scales "
            "train on nested subsets, and their introspection rows come from the 100 % DPO model.",
        ]
    if _plot(rows, root / "ablation.png"):
        md += ["", "![ablation](ablation.png)"]
    atomic_write_text(root / "ablation.md", "\n".join(md) + "\n")
    return rows


def _ledger_cap(root: Path) -> float | None:
    try:
        cap = json.loads((root / "budget.json").read_text()).get("cap_usd")
    except (OSError, ValueError):
        return None
    return float(cap) if cap is not None else None


def _plot(rows: list[dict[str, Any]], out: Path) -> bool:
    if not rows:
        return False
    from character.report import pyplot, save_figure

    x = [r["pct"] for r in rows]
    fig, (a1, a2) = pyplot().subplots(1, 2, figsize=(9, 3.4))
    panels = (
        (a1, (("marker_before", "before"), ("marker_after", "after")), "marker rate"),
        (a2, (("dpo_final_loss", "DPO"), ("sft_final_loss", "SFT")), "final training loss"),
    )
    for ax, series, ylabel in panels:
        for key, label in series:
            pts = [(xi, r[key]) for xi, r in zip(x, rows, strict=True) if r[key] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax.set_xlabel("% of data")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:  # an early --until leaves a panel without series
            ax.legend(fontsize=8)
    a1.set_ylim(0, 1)
    save_figure(fig, out)
    return True
