"""Roles, each with its own engine: inheritance from [backend], where `info` says each value comes from,
the model name an OpenAI-compatible endpoint gets (never a local path), the seeds every request
carries, and tokens counted per role."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from character.backends.base import make_backend, served_name
from character.backends.roles import ROLES, backend_for, config_for, role_rows
from character.backends.seeds import request_seed, sample_seed
from character.cli import app
from character.config import Price, RunConfig
from character.config_layers import resolve
from character.cost import CostTracker
from character.errors import ConfigError


def test_a_role_inherits_every_unset_field_and_overrides_the_rest() -> None:
    res = resolve(
        environ={"CHARACTER_ROLES__JUDGE__PORT": "9001"},
        overrides={
            "backend.kind": "vllm",
            "backend.gpus": [0, 1, 2, 3],
            "roles.student.gpus": [4],
            "roles.judge.kind": "openai",
            "roles.judge.base_url": "https://api.example.com/v1",
            "roles.judge.model": "judge-large",
        },
    )
    cfg = res.config
    assert set(ROLES) == {"teacher", "student", "introspect", "judge", "classifier"}
    teacher, student, judge = (backend_for(cfg, r) for r in ("teacher", "student", "judge"))
    assert teacher == cfg.backend  # nothing set: exactly [backend]
    assert (student.kind, student.gpus, student.concurrency) == ("vllm", [4], cfg.backend.concurrency)
    assert (judge.kind, judge.base_url, judge.model, judge.port) == (
        "openai",
        "https://api.example.com/v1",
        "judge-large",
        9001,
    )
    assert cfg.backend.gpus == [0, 1, 2, 3] and cfg.backend.model == ""  # [backend] itself untouched
    assert config_for(cfg, "judge").backend == judge and config_for(cfg, "teacher") is cfg
    rows = {f: (v, s) for f, v, s in role_rows(res, "judge")}
    assert rows["kind"] == ("openai", "cli") and rows["port"] == (9001, "env:CHARACTER_ROLES__JUDGE__PORT")
    assert rows["gpus"] == ([0, 1, 2, 3], "backend.gpus (cli)")
    assert rows["concurrency"] == (8, "backend.concurrency (default)")
    with pytest.raises(ConfigError, match="'critic' is not a role"):
        backend_for(cfg, "critic")


def test_info_and_config_show_list_each_roles_engine_with_its_source() -> None:
    env = {
        "COLUMNS": "250",
        "CHARACTER_ROLES__TEACHER__KIND": "openai",
        "CHARACTER_ROLES__TEACHER__MODEL": "big",
    }
    res = CliRunner().invoke(app, ["info"], env=env)
    assert res.exit_code == 0, res.output
    rows = {}
    for line in res.output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if len(cells) == 4 and cells[0] in ROLES:
            rows[(cells[0], cells[1])] = (cells[2], cells[3])
    assert rows[("teacher", "kind")] == ("openai", "env:CHARACTER_ROLES__TEACHER__KIND")
    assert rows[("teacher", "model")] == ("big", "env:CHARACTER_ROLES__TEACHER__MODEL")
    assert rows[("teacher", "base_url")][1] == "backend.base_url (default)"
    assert rows[("student", "kind")] == ("hf", "backend.kind (default)")
    assert {r for r, _ in rows} == set(ROLES)
    shown = CliRunner().invoke(app, ["config", "show", "--sources"], env=env)
    assert (
        "# role teacher: openai (http://127.0.0.1:8000/v1); kind <- env:CHARACTER_ROLES__TEACHER__KIND"
        in (shown.output)
    )
    assert "# role student: hf (auto); all from [backend]" in shown.output


def test_a_remote_endpoint_never_gets_a_local_path_as_model_name(tmp_path: Path) -> None:
    merged = tmp_path / "run" / "dpo" / "merged"
    merged.mkdir(parents=True)
    cfg = RunConfig()
    cfg.roles.introspect.kind = "openai"
    cfg.roles.introspect.base_url = "https://api.example.com/v1"
    # The run's DPO model is a directory on this machine: the endpoint cannot load it.
    with pytest.raises(
        ConfigError, match=r"roles\.introspect\.kind = 'openai' but .*roles\.introspect\.model"
    ):
        make_backend(cfg, str(merged), role="introspect")
    # Named as the endpoint serves it, it goes through; hub ids pass as they are.
    cfg.roles.introspect.model = "remorseful-dpo"
    backend: Any = make_backend(cfg, str(merged), role="introspect")
    assert backend.model == "remorseful-dpo" and backend.base_url == "https://api.example.com/v1"
    assert served_name("", "Qwen/Qwen3-4B-Instruct-2507", "teacher", "x") == "Qwen/Qwen3-4B-Instruct-2507"
    # The student role is untouched by the introspect role's engine.
    assert backend_for(cfg, "student").kind == "hf"


def test_request_seeds_are_per_sample_and_stable() -> None:
    seeds = {request_seed(123456, f"p{i}", k) for i in range(50) for k in range(5)}
    assert len(seeds) == 250  # every (prompt, k) its own seed: K samples are K draws
    assert all(0 <= s < 2**31 for s in seeds)
    assert request_seed(123456, "p1", 2) == request_seed(123456, "p1", 2)  # a resumed run: the same
    assert request_seed(123456, "p1", 2) != request_seed(654321, "p1", 2)
    # Pinned: a seed must not change between processes or releases (a resume would resample).
    assert request_seed(123456, "p-remorseful-t0-1", 0) == 1331661050  # sha256, not Python's salted hash()
    assert sample_seed(77, 0) == 77 and len({sample_seed(77, j) for j in range(8)}) == 8


def test_tokens_and_cost_are_split_by_role() -> None:
    t = CostTracker({"gpt-big": Price(input_per_million=1.0, output_per_million=2.0)})
    t.record("distill", "gpt-big", 1000, 500, role="teacher")
    t.record("distill", "embedded", 300, 200, role="student")
    t.record("eval", "embedded", 10, 20)
    assert t.totals()["distill"]["gpt-big"]["usd"] == pytest.approx(0.002)
    roles = t.by_role()
    assert roles["distill"]["teacher"]["gpt-big"]["prompt_tokens"] == 1000
    assert roles["distill"]["student"]["embedded"]["completion_tokens"] == 200
    assert roles["eval"][""]["embedded"]["prompt_tokens"] == 10
    assert t.role_tokens("distill") == {
        "teacher": {"gpt-big": {"prompt": 1000, "completion": 500}},
        "student": {"embedded": {"prompt": 300, "completion": 200}},
    }
    doc = t.as_json()
    assert doc["usd"] == pytest.approx(0.002) and set(doc) == {"stages", "roles", "usd"}


def test_the_report_splits_tokens_by_role(tmp_path: Path) -> None:
    import json

    from character.layout import stage_dir
    from character.manifest import Manifest, write_manifest
    from character.report import build
    from character.runs import role_cost_rows

    run = tmp_path / "remorseful_20260101-000000"
    run.mkdir()
    (run / "pipeline.json").write_text(json.dumps({"persona": "remorseful", "status": "done"}))
    t = CostTracker({"gpt-big": Price(input_per_million=1.0, output_per_million=2.0)})
    t.record("distill", "gpt-big", 1000, 500, role="teacher")
    t.record("distill", "embedded", 300, 200, role="student")
    (run / "cost.json").write_text(json.dumps(t.as_json()))
    # A stage run outside the runner: its manifest's role tokens stand in.
    intro = stage_dir(run, "introspect")
    write_manifest(
        intro,
        Manifest(
            stage="introspect",
            config_hash="x",
            extra={"role_tokens": {"introspect": {"dpo/merged": {"prompt": 7, "completion": 9}}}},
        ),
    )
    assert sorted(role_cost_rows(run)) == [
        ("distill", "student", "embedded", 300, 200, 0.0),
        ("distill", "teacher", "gpt-big", 1000, 500, 0.002),
        ("introspect", "introspect", "dpo/merged", 7, 9, 0.0),
    ]
    md = "\n".join(build(run)[0])
    assert "### By role" in md and "| main | distill | teacher | gpt-big | 1,000 | 500 | 0.0020 |" in md
