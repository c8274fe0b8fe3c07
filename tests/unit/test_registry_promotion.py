"""Registry: register/list/show, promotion needs a verified checkpoint, rollback restores, the
production pointer feeds `--persona`, and the CLI commands do the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import registry
from character.cli import app
from character.errors import UsageError

runner = CliRunner()


def _ck(
    artifacts: Path, name: str, verified: bool = True, persona: str = "remorseful"
) -> registry.Checkpoint:
    d = artifacts / "ckpts" / name
    d.mkdir(parents=True, exist_ok=True)
    return registry.register(
        registry.Checkpoint(
            name=name, path=str(d), persona=persona, stage="merged", base="embedded", verified=verified
        )
    )


def test_promote_and_rollback(artifacts: Path) -> None:
    _ck(artifacts, "remorseful_v1")
    _ck(artifacts, "remorseful_v2")
    assert registry.production("remorseful") is None
    with pytest.raises(UsageError, match="no production checkpoint"):
        registry.production_ref("remorseful")
    registry.promote("remorseful_v1")
    ev = registry.promote("remorseful_v2", reason="better")
    assert ev.previous == "remorseful_v1"
    assert registry.production_ref("remorseful") == "remorseful_v2"
    back = registry.rollback("remorseful")
    assert back.name == "remorseful_v1" and back.previous == "remorseful_v2"
    assert registry.production("remorseful").name == "remorseful_v1"
    with pytest.raises(UsageError, match="no earlier production"):
        registry.rollback("remorseful")
    assert [e.action for e in registry.load().log] == ["promote", "promote", "rollback"]


def test_promotion_refuses_unverified_missing_or_same(artifacts: Path) -> None:
    _ck(artifacts, "remorseful_raw", verified=False)
    with pytest.raises(UsageError, match="not verified"):
        registry.promote("remorseful_raw")
    registry.promote("remorseful_raw", force=True)
    with pytest.raises(UsageError, match="already production"):
        registry.promote("remorseful_raw", force=True)
    with pytest.raises(UsageError, match="no checkpoint named"):
        registry.promote("nope")
    gone = _ck(artifacts, "remorseful_gone")
    Path(gone.path).rmdir()
    with pytest.raises(UsageError, match="does not exist"):
        registry.promote("remorseful_gone")


def test_list_filters_and_metrics_update(artifacts: Path) -> None:
    _ck(artifacts, "remorseful_a")
    _ck(artifacts, "pirate_a", persona="pirate")
    assert [c.name for c in registry.list_checkpoints(persona="pirate")] == ["pirate_a"]
    registry.update_metrics("pirate_a", {"eval_marker_rate_after": 0.5})
    assert registry.get("pirate_a").metrics["eval_marker_rate_after"] == 0.5
    # Existing functions keep their behaviour: names resolve as model references.
    from character.models import resolve_model

    assert resolve_model("pirate_a") == registry.get("pirate_a").path


def test_corrupt_registry_is_one_clear_error(artifacts: Path) -> None:
    registry.registry_path().write_text("{not json")
    with pytest.raises(UsageError, match="not valid"):
        registry.load()


def test_checkpoint_cli(artifacts: Path) -> None:
    _ck(artifacts, "remorseful_v1")
    _ck(artifacts, "remorseful_v2", verified=False)
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v2"])
    assert r.exit_code == 2 and "not verified" in r.output
    r = runner.invoke(app, ["checkpoint", "promote", "remorseful_v2", "--force", "--reason", "manual"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["checkpoint", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "remorseful_v1" in r.output and "remorseful_v2" in r.output
    r = runner.invoke(app, ["checkpoint", "show", "remorseful_v2"])
    assert r.exit_code == 0 and '"production": true' in r.output and "manual" in r.output
    r = runner.invoke(app, ["checkpoint", "rollback", "--persona", "remorseful"])
    assert r.exit_code == 0 and "= remorseful_v1" in r.output
    r = runner.invoke(app, ["checkpoint", "show", "missing"])
    assert r.exit_code == 2 and "no checkpoint named 'missing'" in r.output
