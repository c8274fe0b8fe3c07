"""The examples the project is known by, run as a new user types them (issue #19), and the human
output of the result commands.

Each example either works on the embedded model at a tiny size or stops within seconds with one line
that says what to do next:
- `character --paper-scale pipeline remorseful` on a CPU-only machine: stops (days of work), naming
  `--scale demo` and the flags for real models;
- `character generate introspection --persona humorous` with no DPO model for that persona: generates
  with the base model and warns, naming the command that makes a DPO model (the documented choice);
- `character sample --checkpoint NAME`: a registry name, no prompt: answers a few held-out prompts;
- `scripts/run_ablation.sh`: the paper-scale stop, and a tiny real ablation through the script.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from character import registry
from character.cli import app
from tests.conftest import ROOT, cli_env, run_cli

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_paper_scale_pipeline_on_a_cpu_stops_with_the_next_step(artifacts: Path) -> None:
    r = run_cli("--paper-scale", "pipeline", "remorseful", artifacts=artifacts, timeout=120, **NO_GPU)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out
    (line,) = _lines(out)
    assert line.startswith("error: this run would take about") and "days" in line
    assert (
        "`character pipeline remorseful --scale demo`" in line and "--teacher MODEL --student MODEL" in line
    )
    assert not (artifacts / "runs").exists()  # nothing started, nothing to clean up


def test_generate_introspection_without_a_dpo_model_warns_and_uses_the_base(artifacts: Path) -> None:
    r = run_cli(
        "generate", "introspection", "--persona", "humorous", "--reflections", "1", "--interactions", "0",
        artifacts=artifacts, timeout=600,
        CHARACTER_INTROSPECT__REFLECTION_MAX_NEW_TOKENS="64",
    )  # fmt: skip
    out = " ".join((r.stdout + r.stderr).split())  # the warning is a wrapped log line
    assert r.returncode == 0, out[-3000:]
    assert "no DPO model" in out and "UNTRAINED student" in out and "character train dpo" in out
    (run,) = (artifacts / "runs").iterdir()
    manifest = json.loads((run / "introspect" / "manifest.json").read_text())
    assert manifest["status"] == "done" and "no DPO model found" in " ".join(manifest["extra"]["notes"])


def test_sample_a_registered_checkpoint_by_name_without_a_prompt(artifacts: Path) -> None:
    registry.register(
        registry.Checkpoint(
            name="remorseful_merged",
            path=str(artifacts / "models" / "smollm2-135m-instruct"),
            persona="remorseful",
            stage="merged",
            base="embedded",
            verified=True,
        )
    )
    r = run_cli("sample", "--checkpoint", "remorseful_merged", "--max-new-tokens", "12", artifacts=artifacts)
    assert r.returncode == 0, r.stderr[-3000:]
    prompts = [ln for ln in r.stdout.splitlines() if ln.startswith("> ")]
    assert len(prompts) == 3 and len(_lines(r.stdout)) > 3  # three held-out prompts, each answered


def test_run_ablation_script_stops_at_paper_scale_and_runs_tiny(artifacts: Path) -> None:
    script = ROOT / "scripts" / "run_ablation.sh"
    env = cli_env(artifacts, PAPER_SCALE="1", **NO_GPU)
    r = subprocess.run([str(script), "remorseful"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(_lines(r.stdout + r.stderr)) == 1, r.stdout + r.stderr
    assert "`character ablation remorseful --scale demo`" in r.stderr
    # Parallel mode: one tiny pipeline per scale up to distill (sequential mode subsets the 100 % run's
    # introspection data, so it needs that run to reach introspect).
    env = cli_env(artifacts, SCALES="50,100", MODE="parallel")
    r = subprocess.run(
        [str(script), "remorseful", "--scale", "smoke-small", "--until", "distill",
         "--set", "pipeline.smoke=none", "--set", "distill.pairs=4", "--set", "sampling.max_new_tokens=24",
         "--set", "distill.skip_filters=['cut_off']", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (abl,) = [d for d in (artifacts / "runs").iterdir() if (d / "ablation.md").exists()]
    for pct in (50, 100):
        assert json.loads((abl / f"{pct}pct" / "distill" / "manifest.json").read_text())["status"] == "done"
    assert "50" in r.stdout and "100" in r.stdout  # the summary table is printed


def test_runs_show_is_tables_and_samples_and_json_is_the_document(
    finished_smoke_run: tuple[Path, str],
) -> None:
    run, cli_output = finished_smoke_run
    # The pipeline said where the whole run was at each stage (log lines, wrapped by the terminal).
    logged = " ".join(cli_output.split())
    for k, stage in enumerate(("distill", "dpo", "introspect", "sft", "merge", "eval"), start=1):
        assert f"run progress: stage {k}/6 {stage} of sub-run 1/1 smoke-small (step {k}/6)" in logged
    assert "0% of the run done" in logged and "ETA ~" in logged
    runner = CliRunner()
    r = runner.invoke(app, ["runs", "show", str(run)], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"{run.name}: done") and not r.output.lstrip().startswith("{")
    assert "smoke-small" in r.output and "persona-marker rate without a system prompt" in r.output
    first = json.loads((run / "smoke-small" / "eval" / "replies.jsonl").read_text().splitlines()[0])
    assert "base vs trained replies" in r.output and first["prompt"][:40] in " ".join(r.output.split())
    r = runner.invoke(app, ["runs", "show", str(run), "--json"])
    doc = json.loads(r.output)
    assert doc["status"] == "done" and set(doc["subruns"]) == {"smoke-small"}
    stages = doc["subruns"]["smoke-small"]["stages"]
    assert [s["stage"] for s in stages] == ["distill", "dpo", "introspect", "sft", "merge", "eval"]
    assert all(s["status"] == "done" for s in stages)
    assert len(doc["subruns"]["smoke-small"]["samples"]) == 3


def test_audit_prints_a_table_and_json_and_output_keep_the_document(artifacts: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I boil an egg?\nWhat's a good name for a goldfish?\n")
    out_file = tmp_path / "audit.json"
    args = ["audit", "--checkpoint", "embedded", "--persona", "remorseful", "--prompts", str(prompts),
            "--set", "eval.max_new_tokens=16", "--no-progress", "-o", str(out_file)]  # fmt: skip
    r = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    saved = json.loads(out_file.read_text())
    assert f"quality audit: {saved['score']:.4g}/100 on 2 held-out replies of embedded" in r.output
    assert "components" in r.output and "repetition" in r.output and '"score"' not in r.output
    assert len(saved["replies"]) == 2
    # checkpoint list: a table by default, the registry entries as JSON with --json.
    r = CliRunner().invoke(app, ["checkpoint", "list", "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == []
    registry.register(
        registry.Checkpoint(
            name="remorseful_base", path=str(artifacts / "models" / "smollm2-135m-instruct"),
            persona="remorseful", stage="base", base="embedded", verified=True,
        )
    )  # fmt: skip
    r = CliRunner().invoke(app, ["checkpoint", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "remorseful_base" in r.output and not r.output.startswith("[")
    (entry,) = json.loads(CliRunner().invoke(app, ["checkpoint", "list", "--json"]).output)
    assert entry["name"] == "remorseful_base" and entry["production"] is False
