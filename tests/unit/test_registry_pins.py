"""What ships stays what was promoted: a later run's registration gets a new version instead of
replacing the pinned entry, `chat`/`sample --persona` serve the pinned files and refuse (one line,
exit 1) when those files change, an old registry.json migrates on read, and the record `eval compare`
writes is the one `checkpoint promote` reads. Checkpoints are copies of the tiny random model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import evidence, registry
from character.cli import app
from character.errors import UsageError
from character.eval.target import resolve_target
from tests.unit.test_registry_promotion import ck, make_model, record

runner = CliRunner()


def test_a_second_run_does_not_change_what_persona_serves(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    base = str(make_model(tiny_model, tmp_path / "base"))
    first = make_model(tiny_model, tmp_path / "run1" / "merge" / "model", 0.5)
    a = ck(first, "remorseful_merged", base=base)
    record(a, evidence.ref_identity(base)["key"])
    registry.promote("remorseful_merged")
    # A second pipeline-like run registers the same name from its own run directory.
    second = make_model(tiny_model, tmp_path / "run2" / "merge" / "model", 1.0)
    b = ck(second, "remorseful_merged", base=base)
    assert b.name == "remorseful_merged@2" and b.sha256 != a.sha256
    assert registry.get("remorseful_merged").name == "remorseful_merged@2"  # a bare name: the newest
    assert registry.get("remorseful_merged@1").sha256 == a.sha256  # the shipped entry is untouched
    ref = registry.production_ref("remorseful")
    assert ref == "remorseful_merged@1" and resolve_target(ref).model == str(first.resolve())
    r = runner.invoke(app, ["chat", "--persona", "remorseful", "--max-new-tokens", "2"], input="hi\n")
    assert r.exit_code == 0, r.output
    assert "chatting with remorseful_merged;" in r.output and "@2" not in r.output
    # Re-running the second (unpinned) run in place replaces its own entry: no @3.
    assert ck(second, "remorseful_merged", base=base).name == "remorseful_merged@2"
    assert len(registry.load().checkpoints) == 2


def test_overwritten_production_files_are_refused_with_one_line(
    artifacts: Path, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = str(make_model(tiny_model, tmp_path / "base"))
    run_dir = tmp_path / "run" / "merge" / "model"
    a = ck(make_model(tiny_model, run_dir, 0.5), "remorseful_merged", base=base)
    record(a, evidence.ref_identity(base)["key"])
    registry.promote(a.name)
    # The same run directory trained again (e.g. `merge` re-run into it): new files at the pinned path.
    shutil.rmtree(run_dir)
    make_model(tiny_model, run_dir, 2.0)
    with caplog.at_level(logging.WARNING, logger="character.registry"):
        again = ck(run_dir, "remorseful_merged", base=base)
    assert again.name == "remorseful_merged@2"  # the pinned entry is never replaced
    assert "pinned by production or history" in caplog.text
    for args in (["sample", "hi", "--persona", "remorseful"], ["chat", "--persona", "remorseful"]):
        r = runner.invoke(app, args, input="hi\n")
        assert r.exit_code == 1, r.output
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "no longer match the pinned weights" in lines[0], r.output
        assert "Traceback" not in r.output


def test_a_registry_without_hashes_migrates_on_read(
    artifacts: Path, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = make_model(tiny_model, tmp_path / "old", 0.5)
    new = make_model(tiny_model, tmp_path / "new", 1.0)

    def entry(name: str, path: Path) -> dict:
        return {
            "name": name,
            "path": str(path),
            "persona": "remorseful",
            "stage": "merged",
            "base": "embedded",
        }

    legacy = {  # the format every registry.json had before weight hashes
        "checkpoints": {
            "remorseful_old": entry("remorseful_old", old),
            "remorseful_new": entry("remorseful_new", new),
            "remorseful_gone": entry("remorseful_gone", tmp_path / "gone"),
        },
        "production": {"remorseful": "remorseful_new"},
        "history": {"remorseful": ["remorseful_old"]},
        "log": [{"persona": "remorseful", "name": "remorseful_new", "previous": "remorseful_old"}],
    }
    registry.registry_path().write_text(json.dumps(legacy))
    with caplog.at_level(logging.WARNING, logger="character.registry_format"):
        reg = registry.load()
    assert "predates weight hashes: migrated to format 2 (hashed 2 entries" in caplog.text
    assert "files missing for remorseful_gone" in caplog.text
    from character.fingerprint import weights_sha256

    assert reg.production["remorseful"].sha256 == weights_sha256(new)
    assert reg.history["remorseful"][0].sha256 == weights_sha256(old)
    assert reg.checkpoints["remorseful_gone"].sha256 is None
    assert json.loads(registry.registry_path().read_text())["format"] == 2  # written back once
    assert registry.production_ref("remorseful") == "remorseful_new@1"
    assert registry.rollback("remorseful").name == "remorseful_old"


def test_eval_compare_writes_the_record_that_promote_reads(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The real `eval compare` on two tiny random models: not a promote verdict, and promote says so."""
    base = str(make_model(tiny_model, tmp_path / "base"))
    cand = ck(make_model(tiny_model, tmp_path / "run" / "merged", 0.5), "remorseful_merged", base=base)
    probes = tmp_path / "probes.jsonl"
    src = Path(evidence.__file__).parent / "eval" / "data" / "probes.jsonl"
    probes.write_text("".join(src.read_text().splitlines(keepends=True)[:3]))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I boil an egg?\nName a colour.\n")
    args = [
        "eval",
        "compare",
        "--baseline",
        base,
        "--candidate",
        "remorseful_merged",
        "--persona",
        "remorseful",
    ]
    args += ["--probes", str(probes), "--prompts", str(prompts), "--no-prompt-baseline", "--no-progress"]
    args += ["--set", "eval.max_new_tokens=3", "--set", "eval.probe_max_new_tokens=3"]
    r = runner.invoke(app, args)
    assert r.exit_code in (1, 3), r.output  # refuse or reject: random weights never pass
    rec_path = evidence.record_path(cand.sha256, evidence.ref_identity(base)["key"])
    rec = json.loads(rec_path.read_text())
    assert rec["recommendation"] in ("refuse", "reject") and rec["candidate"]["sha256"] == cand.sha256
    assert rec["persona"] == "remorseful" and rec["capability"]["n"] == 3
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_merged"])
    assert r.exit_code == 1 and f"says {rec['recommendation']}" in r.output, r.output


def test_stages_never_write_over_pinned_files(artifacts: Path, tiny_model: Path, tmp_path: Path) -> None:
    base = str(make_model(tiny_model, tmp_path / "base"))
    shipped = make_model(tiny_model, artifacts / "models" / "remorseful_merged", 0.5)
    registry.promote(ck(shipped, "remorseful_merged", base=base).name, force=True, reason="test")
    with pytest.raises(
        UsageError, match="holds 'remorseful_merged', which production or rollback history pins"
    ):
        registry.refuse_if_pinned(shipped, "the merge output")
    registry.refuse_if_pinned(tmp_path / "elsewhere", "the merge output")
    from character.config import RunConfig
    from character.stages.merge import default_output

    assert default_output(RunConfig()) == artifacts / "models" / "remorseful_merged@2"


@pytest.mark.parametrize("stage", ["dpo", "sft"])
def test_retraining_into_a_pinned_run_dir_is_refused_before_anything_is_deleted(
    artifacts: Path, tiny_model: Path, tmp_path: Path, stage: str
) -> None:
    from character.stages import dpo, sft

    base = str(make_model(tiny_model, tmp_path / "base"))
    stage_dir = tmp_path / "run" / stage
    shipped = make_model(tiny_model, stage_dir / ("merged" if stage == "dpo" else "adapter"), 0.5)
    a = ck(shipped, f"remorseful_{stage}", base=base)
    record(a, evidence.ref_identity(base)["key"])
    registry.promote(a.name)
    (stage_dir / "manifest.json").write_text("{}")
    clear = dpo._clear_outputs if stage == "dpo" else sft._clear_outputs
    with pytest.raises(UsageError, match="pins"):
        clear(stage_dir)
    assert (shipped / "config.json").exists() and (stage_dir / "manifest.json").exists()
