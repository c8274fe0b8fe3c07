"""Registry: register/list/show, versions instead of overwrites, promotion needs a compare record for
the exact hash (or --force with a reason, logged), smoke checkpoints never ship, rollback restores a
pin, and the CLI commands do the same. Checkpoints are copies of the tiny random model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import evidence, registry
from character.cli import app
from character.errors import UsageError, VerificationError
from character.registry import PromotionRefused

runner = CliRunner()


def make_model(tiny_model: Path, dest: Path, bump: float = 0.0) -> Path:
    """A copy of the tiny model; `bump` != 0 changes one weight, so the copy hashes differently."""
    shutil.copytree(tiny_model, dest)
    if bump:
        from safetensors.torch import load_file, save_file

        w = load_file(dest / "model.safetensors")
        k = next(iter(w))
        w[k] = w[k] + bump
        save_file(w, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def ck(
    path: Path,
    name: str,
    *,
    base: str,
    verified: bool = True,
    persona: str = "remorseful",
    run: Path | None = None,
) -> registry.Checkpoint:
    return registry.register(
        registry.Checkpoint(
            name=name,
            path=str(path),
            persona=persona,
            stage="merged",
            base=base,
            verified=verified,
            run=str(run) if run else None,
        )
    )


def record(
    candidate: registry.Checkpoint, baseline_key: str, rec: str = "promote", persona: str = "remorseful"
) -> Path:
    """A compare record as `eval compare` writes it (the format `promote` reads)."""
    path = evidence.write_record(
        {"recommendation": rec, "reasons": [f"test says {rec}"], "summary": {}},
        {"ref": "baseline", "key": baseline_key, "sha256": baseline_key},
        evidence.identity(candidate.path, name=candidate.name),
        persona=persona,
    )
    assert path is not None
    return path


@pytest.fixture
def models(artifacts: Path, tiny_model: Path, tmp_path: Path) -> dict[str, Path]:
    base = make_model(tiny_model, tmp_path / "base")
    return {
        "base": base,
        "v1": make_model(tiny_model, tmp_path / "r1" / "merged", 0.5),
        "v2": make_model(tiny_model, tmp_path / "r2" / "merged", 1.0),
    }


def test_promotion_needs_a_passing_record_for_the_exact_hash(models: dict[str, Path]) -> None:
    base = str(models["base"])
    a = ck(models["v1"], "remorseful_merged", base=base)
    with pytest.raises(PromotionRefused, match="needs a passing comparison: no `eval compare` record"):
        registry.promote("remorseful_merged")
    base_key = evidence.ref_identity(base)["key"]
    record(a, base_key, rec="reject")
    with pytest.raises(PromotionRefused, match="says reject"):
        registry.promote("remorseful_merged")
    record(a, base_key, persona="pirate")
    with pytest.raises(PromotionRefused, match="judged persona 'pirate'"):
        registry.promote("remorseful_merged")
    rec = record(a, base_key)
    ev = registry.promote("remorseful_merged")
    assert ev.evidence == str(rec) and not ev.forced and ev.sha256 == a.sha256
    pin = registry.production_pin("remorseful")
    assert (pin.name, pin.path, pin.sha256) == ("remorseful_merged", a.path, a.sha256)
    # The next candidate needs a record against what ships now, not against the base.
    b = ck(models["v2"], "remorseful_merged", base=base)
    assert b.name == "remorseful_merged@2"
    record(b, base_key)
    with pytest.raises(PromotionRefused, match="against remorseful_merged@1"):
        registry.promote(b.name)
    record(b, a.sha256)
    registry.promote(b.name)
    assert registry.production_ref("remorseful") == "remorseful_merged@2"
    assert [p.sha256 for p in registry.load().history["remorseful"]] == [a.sha256]


def test_forced_promotion_needs_a_reason_and_is_logged(models: dict[str, Path]) -> None:
    ck(models["v1"], "remorseful_merged", base=str(models["base"]), verified=False)
    with pytest.raises(UsageError, match="--force needs --reason"):
        registry.promote("remorseful_merged", force=True)
    ev = registry.promote("remorseful_merged", force=True, reason="hotfix: the old one leaks the rubric")
    assert ev.forced and ev.evidence is None
    last = registry.load().log[-1]
    assert last.forced and last.reason == "hotfix: the old one leaks the rubric" and last.action == "promote"
    with pytest.raises(UsageError, match="already production"):
        registry.promote("remorseful_merged", force=True, reason="again")


def test_smoke_checkpoints_are_never_promoted(models: dict[str, Path], tmp_path: Path) -> None:
    smoke_run = tmp_path / "run1" / "smoke-small"
    smoke_run.mkdir(parents=True)
    s = ck(models["v1"], "remorseful_smoke-small_merged", base=str(models["base"]), run=smoke_run)
    record(s, evidence.ref_identity(str(models["base"]))["key"])
    for kwargs in ({}, {"force": True, "reason": "I know what I am doing"}):
        with pytest.raises(PromotionRefused, match="smoke checkpoint"):
            registry.promote(s.name, **kwargs)
    # A run made with a smoke preset, under any directory name, is a smoke run too.
    run = tmp_path / "plain-run"
    run.mkdir()
    (run / "sources.json").write_text(json.dumps({"dpo.max_steps": "preset:smoke-small"}))
    p = ck(models["v2"], "remorseful_merged", base=str(models["base"]), run=run)
    with pytest.raises(PromotionRefused, match="smoke-small settings"):
        registry.promote(p.name, force=True, reason="x")
    assert registry.production_pin("remorseful") is None


def test_tampered_files_are_refused_everywhere(models: dict[str, Path]) -> None:
    base = str(models["base"])
    a = ck(models["v1"], "remorseful_merged", base=base)
    record(a, evidence.ref_identity(base)["key"])
    registry.promote(a.name)
    b = ck(models["v2"], "remorseful_merged", base=base)
    shutil.copy(models["base"] / "model.safetensors", models["v2"] / "model.safetensors")
    with pytest.raises(VerificationError, match="no longer match"):
        registry.promote(b.name, force=True, reason="forced or not")
    from character.config import RunConfig
    from character.eval.compare import refuse_before_work
    from character.eval.target import resolve_target

    with pytest.raises(VerificationError, match="no longer match"):
        refuse_before_work(RunConfig(), resolve_target(base), resolve_target(b.name))
    shutil.copy(models["base"] / "model.safetensors", models["v1"] / "model.safetensors")
    with pytest.raises(VerificationError, match="production checkpoint of 'remorseful' 'remorseful_merged'"):
        registry.production_ref("remorseful")


def test_rollback_restores_the_pinned_files(models: dict[str, Path]) -> None:
    base = str(models["base"])
    a = ck(models["v1"], "remorseful_a", base=base)
    b = ck(models["v2"], "remorseful_b", base=base)
    registry.promote(a.name, force=True, reason="first")
    record(b, a.sha256)
    ev = registry.promote(b.name)
    assert ev.previous == "remorseful_a"
    back = registry.rollback("remorseful", reason="b regressed")
    assert back.name == "remorseful_a" and back.previous == "remorseful_b" and back.action == "rollback"
    assert registry.production("remorseful").name == "remorseful_a"
    with pytest.raises(UsageError, match="no earlier production"):
        registry.rollback("remorseful")
    assert [e.action for e in registry.load().log] == ["promote", "promote", "rollback"]


def test_list_filters_metrics_and_name_resolution(models: dict[str, Path]) -> None:
    a = ck(models["v1"], "remorseful_a", base=str(models["base"]))
    ck(models["v2"], "pirate_a", base=str(models["base"]), persona="pirate")
    assert [c.name for c in registry.list_checkpoints(persona="pirate")] == ["pirate_a"]
    registry.update_metrics("pirate_a", {"eval_marker_rate_after": 0.5})
    assert registry.get("pirate_a").metrics["eval_marker_rate_after"] == 0.5
    from character.models import resolve_model

    assert resolve_model("remorseful_a") == a.path == resolve_model("remorseful_a@1")
    with pytest.raises(UsageError, match="may not contain '@'"):
        ck(models["v1"], "remorseful_a@7", base="embedded")


def test_corrupt_registry_is_one_clear_error(artifacts: Path) -> None:
    registry.registry_path().write_text("{not json")
    with pytest.raises(UsageError, match="not valid"):
        registry.load()


def test_checkpoint_cli(models: dict[str, Path]) -> None:
    base = str(models["base"])
    a = ck(models["v1"], "remorseful_v1", base=base)
    ck(models["v2"], "remorseful_v2", base=base, verified=False)
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v1"])
    assert r.exit_code == 1 and "needs a passing comparison" in r.output, r.output
    record(a, evidence.ref_identity(base)["key"])
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v1"])
    assert r.exit_code == 0 and "evidence" in r.output, r.output
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v2"])
    assert r.exit_code == 1 and "not verified" in r.output
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v2", "--force", "--reason", "manual"])
    assert r.exit_code == 0 and "FORCED: manual" in r.output, r.output
    r = runner.invoke(app, ["checkpoint", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "remorseful_v1" in r.output and "remorseful_v2" in r.output
    r = runner.invoke(app, ["checkpoint", "show", "remorseful_v2"], env={"COLUMNS": "2000"})
    doc = json.loads(r.output[r.output.index("{") :])
    assert doc["production"] is True and doc["sha256"] and doc["promotions"][-1]["forced"] is True
    r = runner.invoke(app, ["checkpoint", "show", "remorseful_v1"], env={"COLUMNS": "2000"})
    assert json.loads(r.output[r.output.index("{") :])["compare_records"][0]["recommendation"] == "promote"
    r = runner.invoke(app, ["checkpoint", "rollback", "--persona", "remorseful"])
    assert r.exit_code == 0 and "= remorseful_v1" in r.output
    r = runner.invoke(app, ["checkpoint", "show", "missing"])
    assert r.exit_code == 2 and "no checkpoint named 'missing'" in r.output
