"""The run estimate: the CPU check that stops a run of days before it starts, and the overall
progress line (stage k of 6, share of the run, ETA) that learns the run's own speed."""

from __future__ import annotations

import re

import pytest

from character.config_layers import resolve
from character.errors import UsageError
from character.run_estimate import (
    CPU_RATES,
    OverallProgress,
    check_cpu_feasible,
    estimate_seconds,
    run_plan,
    stage_work,
)


def _cfg(presets: list[str], **overrides: object):  # type: ignore[no-untyped-def]
    return resolve(presets=presets, overrides={"backend.device": "cpu", **overrides}).config


def test_paper_sizes_on_the_cpu_stop_with_the_way_forward() -> None:
    cfg = _cfg(["paper"])
    with pytest.raises(UsageError) as e:
        check_cpu_feasible(cfg, "character pipeline remorseful")
    msg = str(e.value)
    assert "days" in msg and "`character pipeline remorseful --scale demo`" in msg
    assert "--teacher MODEL --student MODEL --backend vllm" in msg and "pipeline.max_cpu_hours=0" in msg
    assert "9,150 pairs" in msg


def test_small_runs_a_gpu_and_the_override_pass() -> None:
    check_cpu_feasible(_cfg(["demo"]), "character pipeline remorseful")
    check_cpu_feasible(_cfg(["smoke"]), "character pipeline remorseful")
    check_cpu_feasible(_cfg(["paper"], **{"pipeline.max_cpu_hours": 0}), "x")
    check_cpu_feasible(_cfg(["paper"], **{"backend.device": "cuda"}), "x")
    # --until distill is a smaller run: the limit applies to what will actually run.
    paper = _cfg(["paper"], **{"pipeline.smoke": "none"})
    assert estimate_seconds(paper, until="distill") < estimate_seconds(paper)


def test_work_follows_the_presets_sizes() -> None:
    demo, paper = _cfg(["demo"]), _cfg(["paper"])
    for stage in ("distill", "dpo", "introspect", "sft", "eval"):
        assert stage_work(paper, stage) > 10 * stage_work(demo, stage), stage
    # The demo preset's estimate matches its measured wall time (report 001: 877 s) within a factor 2.
    demo_main = _cfg(["demo"], **{"pipeline.smoke": "none"})
    assert 877 / 2 < estimate_seconds(demo_main) < 877 * 2
    labels = [label for label, _, _ in run_plan(_cfg([], **{"pipeline.smoke": "both"}))]
    assert labels == ["smoke-small", "smoke-large", "main"]


def _numbers(line: str) -> tuple[str, int]:
    m = re.search(r"stage (\d/\d) \w+ of sub-run .*, (\d+)% of the run done", line)
    assert m, line
    return m.group(1), int(m.group(2))


def test_progress_line_counts_stages_and_learns_the_runs_speed() -> None:
    cfg = _cfg([], **{"pipeline.smoke": "small"})
    plan = run_plan(cfg)
    p = OverallProgress(plan)
    first = p.begin("smoke-small", "distill")
    assert _numbers(first) == ("1/6", 0) and "sub-run 1/2 smoke-small" in first and "step 1/12" in first
    assert "the embedded model's CPU rates" in first
    main_cfg = plan[1][1]
    at_cpu_rate = p.estimate("main", "distill", main_cfg)
    # The smoke distill took 10x longer than the CPU rates say: every later estimate of it follows.
    p.done("smoke-small", "distill", 10 * stage_work(plan[0][1], "distill") / CPU_RATES["distill"])
    assert p.estimate("main", "distill", main_cfg) == pytest.approx(10 * at_cpu_rate)
    # Stages that have not run yet take the median speed of those that have.
    assert p.estimate("main", "sft", main_cfg) == pytest.approx(
        10 * stage_work(main_cfg, "sft") / CPU_RATES["sft"]
    )
    line = p.begin("smoke-small", "dpo")
    k, share = _numbers(line)
    assert k == "2/6" and 0 < share < 100 and "measured rates" in line
    # A resumed run's finished stages count as done work.
    q = OverallProgress(plan)
    for stage in ("distill", "dpo", "introspect", "sft", "merge", "eval"):
        q.skipped("smoke-small", stage)
    k, share = _numbers(q.begin("main", "distill"))
    assert k == "1/6" and share > 0
    assert q.begin("nowhere", "distill") == ""  # not in the plan: no line, no crash


def test_the_runner_logs_one_progress_line_per_stage(artifacts, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from character.runner import Runner
    from tests.unit.test_runner import FakeStages

    res = resolve(environ={}, overrides={"pipeline.smoke": "small"})
    with caplog.at_level(logging.INFO, logger="character.runner"):
        Runner(res, stages=FakeStages().table(), progress=False).run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run progress:")]
    assert len(lines) == 12  # 6 stages of smoke-small, then 6 of the full run
    got = [_numbers(ln) for ln in lines]
    assert [k for k, _ in got] == [f"{i}/6" for i in range(1, 7)] * 2
    shares = [s for _, s in got]
    # Fake stages take milliseconds, so the learnt speeds are noise: only the bounds are certain.
    assert shares[0] == 0 and all(0 <= s < 100 for s in shares)
    assert "sub-run 2/2 main" in lines[6] and "step 7/12" in lines[6]
    assert all("measured rates" in ln for ln in lines[1:])  # learnt from the first finished stage
