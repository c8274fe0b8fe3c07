"""Sequential ablation: generate once at 100 %, train on nested subsets (fake stages, real runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character.ablation import nested_subset, run_ablation
from character.config_layers import Resolved, resolve
from character.records import read_jsonl
from tests.unit.test_runner import FakeStages


def small_ablation(scales: list[int]) -> Resolved:
    """20 pairs, 8 reflections and 4 interactions, no smoke sub-run: every scale is a whole count."""
    return resolve(
        environ={},
        overrides={
            "pipeline.smoke": "none",
            "distill.pairs": 20,
            "introspect.reflections": 8,
            "introspect.interactions": 4,
            "pipeline.ablation_scales": scales,
        },
    )


def test_nested_subsets_are_nested_and_stratified() -> None:
    rows = [{"id": i, "kind": "reflection" if i % 4 else "interaction"} for i in range(40)]
    a, b, c = (nested_subset(rows, s, 7, "kind") for s in (0.25, 0.5, 1.0))
    ids = [{r["id"] for r in x} for x in (a, b, c)]
    assert ids[0] < ids[1] < ids[2] and len(c) == 40
    assert sum(r["kind"] == "interaction" for r in a) == 3  # ceil(10 * 0.25)
    assert [r["id"] for r in b] == sorted(r["id"] for r in b)  # original order kept
    assert nested_subset(rows, 0.5, 8, "kind") != b  # the seed matters


def test_sequential_generates_once_and_trains_each_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    fake = FakeStages()
    res = small_ablation([25, 50])
    root = run_ablation(res, progress=False, stages=fake.table())
    by_dir: dict[str, list[str]] = {}
    for stage, d in fake.calls:
        by_dir.setdefault(d, []).append(stage)
    assert by_dir["100pct"] == ["distill", "dpo", "introspect", "sft", "merge", "eval"]
    for pct in ("25pct", "50pct"):  # no generation at the smaller scales
        assert by_dir[pct] == ["dpo", "sft", "merge", "eval"]
    p25 = {r["prompt_id"] for r in read_jsonl(root / "25pct" / "distill" / "pairs.jsonl")}
    p50 = {r["prompt_id"] for r in read_jsonl(root / "50pct" / "distill" / "pairs.jsonl")}
    p100 = {r["prompt_id"] for r in read_jsonl(root / "100pct" / "distill" / "pairs.jsonl")}
    assert len(p25) == 5 and len(p50) == 10 and p25 < p50 < p100
    summary = json.loads((root / "ablation.json").read_text())
    assert [r["pct"] for r in summary] == [25, 50, 100]
    assert [r["pairs"] for r in summary] == [5, 10, 20]
    assert summary[0]["dpo_final_loss"] == pytest.approx(0.7 / 3)
    md = (root / "ablation.md").read_text()
    assert "| 25% | 5 | 3 |" in md and (root / "ablation.png").exists()
    # checkpoint names come from the suffix each scale's config carries
    import tomllib

    from character.config import RunConfig

    cfg = RunConfig.model_validate(tomllib.loads((root / "25pct" / "resolved_config.toml").read_text()))
    assert cfg.name_suffix == "25pct"
    # resuming the whole ablation trains nothing again
    fake.calls.clear()
    run_ablation(res, root=root, progress=False, stages=fake.table())
    assert fake.calls == []


@pytest.mark.parametrize(
    ("until", "small_scale_stages"), [("distill", []), ("dpo", ["dpo"]), ("introspect", ["dpo"])]
)
def test_sequential_until_a_stage_derives_only_what_the_full_run_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: str, small_scale_stages: list[str]
) -> None:
    # `ablation --until distill` used to stop at the first smaller scale, asking for the 100 % run's
    # introspection data, which an early stop never makes.
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    fake = FakeStages()
    res = small_ablation([50])
    root = run_ablation(res, progress=False, stages=fake.table(), until=until)
    calls = [stage for stage, d in fake.calls if d == "50pct"]
    assert calls == small_scale_stages
    assert (root / "50pct" / "distill" / "pairs.jsonl").exists()
    assert (root / "50pct" / "introspect").exists() == (until == "introspect")
