"""The run report reads what stages wrote: metrics curves, drop reasons, marker rates, cost."""

from __future__ import annotations

import json
from pathlib import Path

from character.layout import stage_dir
from character.manifest import Manifest, write_manifest
from character.report import write_report
from character.runs import curve, drop_reasons, marker_rates, read_metrics


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "remorseful_20260101-000000"
    (run / "pipeline.json").parent.mkdir(parents=True)
    (run / "pipeline.json").write_text(json.dumps({"persona": "remorseful", "status": "done", "stages": {}}))
    (run / "config_hash.txt").write_text("abcd1234abcd1234\n")
    d = stage_dir(run, "distill")
    (d / "stats.json").write_text(
        json.dumps({"dropped": {"chosen_cut_off": 5, "identical": 1}, "kept_rate": 0.6})
    )
    write_manifest(d, Manifest(stage="distill", config_hash="x", counts={"kept": 9}, dropped={"old": 99}))
    p = stage_dir(run, "dpo")
    rows = [{"step": s, "loss": 0.7 / s, "rewards/accuracies": min(1.0, 0.25 * s)} for s in range(1, 5)]
    rows.append({"step": 4, "eval_loss": 0.3})
    (p / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "lo')  # torn
    write_manifest(p, Manifest(stage="dpo", config_hash="x"))
    e = stage_dir(run, "eval")
    # the eval stage's shape: per-side dicts plus flat marker_rate_before/after
    (e / "markers.json").write_text(
        json.dumps(
            {
                "before": {"marker_rate": 0.02, "sustained_rate": 0.0},
                "after": {"marker_rate": 0.41},
                "marker_rate_before": 0.02,
                "marker_rate_after": 0.41,
                "n_before": 100,
                "n_after": 100,
            }
        )
    )
    write_manifest(e, Manifest(stage="eval", config_hash="x"))
    (run / "cost.json").write_text(
        json.dumps(
            {
                "stages": {
                    "distill": {"gpt-x": {"prompt_tokens": 1000, "completion_tokens": 500, "usd": 0.25}}
                },
                "usd": 0.25,
            }
        )
    )
    return run


def test_readers(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rows = read_metrics(run / "dpo" / "metrics.jsonl")
    assert len(rows) == 5  # the torn last line is skipped, not fatal
    assert curve(rows, "rewards/accuracies") == ([1.0, 2.0, 3.0, 4.0], [0.25, 0.5, 0.75, 1.0])
    assert drop_reasons(run / "distill") == {"chosen_cut_off": 5, "identical": 1}  # stats.json first
    assert marker_rates(run) == {"before": 0.02, "after": 0.41, "n_before": 100.0, "n_after": 100.0}
    assert marker_rates(tmp_path) is None


def test_report_files(tmp_path: Path) -> None:
    run = _run(tmp_path)
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    assert "status: **done**" in md and "`abcd1234abcd1234`" in md
    assert "| main | 0.020 | 0.410 (n=100) | +39.0 |" in md
    assert "| main | distill | gpt-x | 1,000 | 500 | 0.2500 |" in md
    assert "**Total: 1,500 tokens, $0.2500**" in md
    for png in ("main-training.png", "main-drops.png", "markers.png"):
        assert (run / "report" / png).stat().st_size > 1000
    html = html_path.read_text()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html and "<h1>" in html
