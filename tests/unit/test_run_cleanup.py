"""`character runs prune`: what it keeps (pinned, newest registered, running, newest N), what it deletes,
and that it deletes nothing unless asked. Runs, the registry and production pins are real files written
through the real registry functions."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from character import registry, run_cleanup, runs
from character.cli import app
from character.registry_format import Checkpoint
from character.runner import write_state


def make_run(root: Path, day: int, *, mb: int = 1) -> Path:
    run = root / "runs" / f"remorseful_2026010{day}-000000"
    (run / "dpo" / "adapter").mkdir(parents=True)
    (run / "merge" / "model").mkdir(parents=True)
    (run / "resolved_config.toml").write_text('persona = "remorseful"\n')
    write_state(run, {"persona": "remorseful", "status": "done"})
    for d in (run / "dpo" / "adapter", run / "merge" / "model"):
        (d / "model.safetensors").write_bytes(os.urandom(mb * 512 * 1024))
    os.utime(run, (1_700_000_000 + day * 100, 1_700_000_000 + day * 100))  # day 5 is the newest
    return run


def register(name: str, path: Path) -> Checkpoint:
    return registry.register(
        Checkpoint(name=name, path=str(path), persona="remorseful", stage=name.rsplit("_", 1)[1], base="x")
    )


def runs_layout(art: Path) -> dict[int, Path]:
    r = {day: make_run(art, day) for day in range(1, 6)}
    register("remorseful_merged", r[1] / "merge" / "model")
    registry.promote("remorseful_merged", force=True, reason="test")  # production pins day 1's files
    register("remorseful_dpo", r[2] / "dpo" / "adapter")  # @1: an older version only
    register("remorseful_dpo", r[4] / "dpo" / "adapter")  # @2: the newest remorseful_dpo
    write_state(r[3], {"persona": "remorseful", "status": "running", "pid": os.getpid()})
    for day, run in r.items():  # write_state touched the dirs: restore the order
        os.utime(run, (1_700_000_000 + day * 100, 1_700_000_000 + day * 100))
    return r


def test_each_reason_to_keep_a_run_and_only_the_rest_can_go(art: Path) -> None:
    r = runs_layout(art)
    plan = {e.path.name: e for e in run_cleanup.plan(keep=1)}
    assert "one of the 1 newest" in plan[r[5].name].keep
    assert "newest remorseful_dpo" in plan[r[4].name].keep
    assert plan[r[3].name].keep.startswith("running")
    assert "pinned (remorseful_merged)" in plan[r[1].name].keep
    assert plan[r[2].name].keep == ""  # holds only remorseful_dpo@1, which a newer version replaced
    assert plan[r[2].name].bytes == run_cleanup.dir_bytes(r[2]) >= 1024 * 1024

    freed = run_cleanup.prune(list(plan.values()))
    assert freed == plan[r[2].name].bytes
    assert not r[2].exists() and all(r[d].exists() for d in (1, 3, 4, 5))
    assert [p.name for p in runs.list_runs()] == [r[d].name for d in (5, 4, 3, 1)]
    assert not list((art / "runs").glob(".*"))  # no half-deleted run left behind
    assert registry.production_ref("remorseful")  # the pinned files still verify


def test_hard_linked_weights_count_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").symlink_to(tmp_path / "a")
    assert run_cleanup.dir_bytes(tmp_path) == 1000


def test_the_command_lists_first_and_deletes_only_with_yes(art: Path) -> None:
    r = runs_layout(art)
    res = CliRunner().invoke(app, ["runs", "prune", "--keep", "1"])
    assert res.exit_code == 0, res.output
    assert "1 run(s) can go" in res.output and "--yes" in res.output
    assert r[2].exists()  # listed, not deleted
    res = CliRunner().invoke(app, ["runs", "prune", "--keep", "1", "--yes", "--json"])
    assert res.exit_code == 0, res.output
    assert not r[2].exists() and all(r[d].exists() for d in (1, 3, 4, 5))
    res = CliRunner().invoke(app, ["runs", "prune", "--keep", "0"])
    assert "1 run(s) can go" in res.output  # day 5, no longer kept as the newest
    res = CliRunner().invoke(app, ["runs", "prune", "--keep", "4"])
    assert "nothing to delete" in res.output
