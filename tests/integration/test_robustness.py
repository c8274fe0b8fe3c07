"""Robustness on the embedded model: the eval stage of the shared smoke run measured both checkpoints
(dpo/merged and merge/model) under every variant, and `character eval robustness` re-measures them
from the command line, resumes from its replies file and refuses bad input in one line.

The smoke-small run's figures say nothing about quality (3 DPO steps); these tests check what was
measured, on what, and that the classifier never saw a reply it was scored on.
"""

from __future__ import annotations

import json
from pathlib import Path

from character.eval.robustness.classifier import norm
from character.manifest import read_manifest
from tests.conftest import run_cli


def _in_unit(x: float | None) -> bool:
    return x is not None and 0.0 <= x <= 1.0


def test_eval_stage_measures_dpo_only_and_full_under_every_variant(
    finished_smoke_run: tuple[Path, str],
) -> None:
    run, _ = finished_smoke_run
    sub = run / "smoke-small"
    doc = json.loads((sub / "eval" / "robustness.json").read_text())
    assert doc["checkpoints"]["dpo_only"].endswith("dpo/merged")
    assert doc["checkpoints"]["full"].endswith("merge/model")
    ids = [v["id"] for v in doc["variants"]]
    assert ids[0] == "default" and len(ids) == 9 and all(v["suffix"] for v in doc["variants"][1:])
    for res in doc["results"].values():
        assert set(res["suffixes"]) == {*ids, "mean"}
        for vid in ids:
            row = res["suffixes"][vid]
            assert row["n"] == 4  # 2 scored prompts x (checkpoint, base)
            lo, hi = row["macro_f1_ci"]
            assert _in_unit(row["macro_f1"]) and lo <= row["macro_f1"] <= hi
            assert _in_unit(row["persona_share"]) and _in_unit(row["accuracy"])
        assert res["prefill"]["n"] == 4 and _in_unit(res["prefill"]["macro_f1"])
        assert set(res["drift"]) == {"turn_1", "turn_3", "turn_5"}
        coh = res["coherence"]
        assert coh["pairs"] == 2 == coh["wins"] + coh["losses"] + coh["inconsistent"] + coh["unparsed"]
        assert set(res["markers"]["tested"]) == set(ids)

    # The classifier: a few dozen replies of three models, none of them scored.
    cl = doc["classifier"]
    assert cl["labels"] == ["base", "remorseful"] and cl["kind"] == "tfidf"
    assert 20 <= sum(cl["train_rows"].values()) <= 30
    train_ids, scored_ids = set(cl["train_prompt_ids"]), set(cl["scored_prompt_ids"])
    assert len(train_ids) == 10 and not train_ids & scored_ids
    rows = [json.loads(x) for x in (sub / "eval" / "robustness_replies.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} == {"base", "dpo_only", "full"}
    train = [r for r in rows if r["prompt_id"] in train_ids]
    assert {(r["kind"], r["variant"]) for r in train} == {("single", "default")}
    scored = {norm(r["text"]) for r in rows if r["prompt_id"] in scored_ids and r["kind"] != "prompted"}
    kept = [r for r in train if r["text"].strip() and norm(r["text"]) not in scored]
    assert sum(cl["train_rows"].values()) == len(kept) == len(train) - cl["dropped_as_scored"]

    # Manifest and run report carry the DPO-only vs full figures.
    metrics = read_manifest(sub / "eval").metrics
    for key in ("dpo_only", "full"):
        assert _in_unit(metrics[f"robustness_{key}_suffix_f1"])
        assert _in_unit(metrics[f"robustness_{key}_prefill_f1"])
    report = (run / "report.md").read_text()
    assert "## Robustness" in report and "| condition | dpo_only | full |" in report
    assert (run / "report" / "smoke-small-robustness-f1.png").stat().st_size > 1000


def test_cli_robustness_resumes_from_its_replies_and_refuses_bad_input(
    finished_smoke_run: tuple[Path, str], artifacts: Path, tmp_path: Path
) -> None:
    run, _ = finished_smoke_run
    sub = run / "smoke-small"
    replies, out = tmp_path / "replies.jsonl", tmp_path / "robustness.json"
    sizes = [
        "robustness.classifier_prompts=6",
        "robustness.prompts=2",
        "robustness.suffix_count=2",
        "robustness.prefill_prompts=1",
        "robustness.drift_conversations=1",
        "robustness.drift_turns=[1, 2]",
        "robustness.coherence_pairs=1",
        "robustness.max_new_tokens=16",
        "robustness.bootstrap=50",
    ]
    args = ["eval", "robustness", "--run", str(sub), "--persona", "remorseful", "--replies", str(replies)]
    args += ["-o", str(out)] + [x for s in sizes for x in ("--set", s)]
    first = run_cli(*args, artifacts=artifacts, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| condition | dpo_only | full |" in first.stdout and "prefill attack" in first.stdout
    doc1 = json.loads(out.read_text())
    assert doc1["replies_generated"] == len(replies.read_text().splitlines()) > 0
    assert [v["id"] for v in doc1["variants"]] == ["default", "real_self", "no_roleplay"]

    # Rerun with the same replies file: nothing is generated again, the figures are the same.
    second = run_cli(*args, artifacts=artifacts, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    doc2 = json.loads(out.read_text())
    assert doc2["replies_generated"] == 0
    for key in ("dpo_only", "full"):
        assert doc2["results"][key]["suffixes"] == doc1["results"][key]["suffixes"]
        assert doc2["results"][key]["prefill"] == doc1["results"][key]["prefill"]

    bad = run_cli("eval", "robustness", "--checkpoint", str(tmp_path / "no-model"), artifacts=artifacts)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
