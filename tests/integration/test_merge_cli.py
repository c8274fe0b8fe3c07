"""`character merge` and `character export` through the real CLI (tiny model, random non-zero adapters)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app
from tests.unit.test_merging import make_adapter, reference_delta, weights


def test_merge_cli_outside_a_run_dir_registers_and_records(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    dpo = make_adapter(tiny_model, tmp_path / "dpo", r=4, alpha=8, seed=1)
    sft = make_adapter(tiny_model, tmp_path / "sft", r=2, alpha=4, seed=2)
    out = tmp_path / "merged"
    args = [
        "merge",
        "--persona",
        "remorseful",
        "--dpo",
        str(dpo),
        "--sft",
        str(sft),
        "--base",
        str(tiny_model),
    ]
    res = CliRunner().invoke(app, [*args, "--sft-weight", "0.5", "-o", str(out), "--as-adapter"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "merge.json").read_text())
    assert [a["weight"] for a in record["adapters"]] == [1.0, 0.5]
    got, base = weights(out), weights(tiny_model)
    d_dpo, d_sft = reference_delta(dpo), reference_delta(sft)
    for key in d_dpo:
        assert (got[key].double() - (base[key].double() + d_dpo[key] + 0.5 * d_sft[key])).abs().max() < 1e-5
    assert (tmp_path / "merged-adapter" / "adapter_config.json").exists()
    reg = json.loads((artifacts / "registry.json").read_text())
    assert reg["checkpoints"]["remorseful_merged"]["path"] == str(out.resolve())


def test_merge_cli_bad_input_is_one_line_and_exit_2(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app,
        [
            "merge",
            "--persona",
            "remorseful",
            "--dpo",
            str(tmp_path),
            "--sft",
            str(tmp_path),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2
    assert "adapter_config.json" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = CliRunner().invoke(app, ["merge", "--persona", "nobody"])
    assert res.exit_code == 2 and "no finished SFT run" in res.stderr
    assert not (tmp_path / "o").exists()
