"""Every evaluation command on the embedded model (tiny generations: 2-3 prompts, <= 16 new tokens).

The judge is the embedded model itself; the "tuned" side is the tiny random model, so the two sides
really differ. Numbers are not asserted to be good (a 135M judge is mostly position bias), only that
the pipeline runs, writes what it says and follows its rules; so the unread-verdict limit is lifted
here (`eval.max_unparsed_share=1`; tests/unit/test_judge_rules.py makes it fire).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import registry
from character.cli import app

runner = CliRunner()
SMALL = [
    "--set",
    "eval.max_new_tokens=16",
    "--set",
    "eval.revealed_max_new_tokens=16",
    "--set",
    "eval.judge_max_new_tokens=4",
    "--set",
    "eval.max_unparsed_share=1.0",
    "--no-progress",
]


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("How do I boil an egg?\nWhat's a good name for a goldfish?\n")
    return p


def _ok(args: list[str], code: int = 0, input: str | None = None) -> str:
    r = runner.invoke(app, args, input=input, env={"COLUMNS": "200"})
    assert r.exit_code == code, f"{args}: exit {r.exit_code}\n{r.output}\n{r.exception!r}"
    return r.output


def _json_out(output: str) -> dict:
    return json.loads(output[output.index("{") :])


def test_sample_and_chat_with_history_and_commands(artifacts: Path) -> None:
    out = _ok(
        [
            "sample",
            "How many legs does a spider have?",
            "--checkpoint",
            "embedded",
            "--max-new-tokens",
            "12",
            "--seed",
            "1",
        ]
    )
    assert out.strip()
    script = "Hi there!\n/system You are brief.\nWhat is 2 + 2?\n/reset\n/bogus\n/quit\n"
    out = _ok(["chat", "--checkpoint", "embedded", "--max-new-tokens", "12"], input=script)
    assert out.count("bot>") == 2
    assert "(system prompt set)" in out and "(history cleared)" in out and "unknown command /bogus" in out
    # --persona uses the production pointer.
    _ok(["chat", "--persona", "remorseful"], code=2, input="/quit\n")
    registry.register(
        registry.Checkpoint(
            name="remorseful_base",
            path=str(artifacts / "models" / "smollm2-135m-instruct"),
            persona="remorseful",
            stage="base",
            base="embedded",
            verified=True,
        )
    )
    registry.promote("remorseful_base", force=True, reason="test: the base model itself, no comparison")
    out = _ok(["chat", "--persona", "remorseful", "--max-new-tokens", "8"], input="Hello\n")
    assert "chatting with remorseful_base" in out and out.count("bot>") == 1


def test_eval_markers_and_audit(artifacts: Path, prompts_file: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "markers.json"
    out = _ok(
        [
            "eval",
            "markers",
            "--checkpoint",
            "embedded",
            "--persona",
            "remorseful",
            "--prompts",
            str(prompts_file),
            "-o",
            str(out_file),
            *SMALL,
            "--json",
        ]
    )
    res = _json_out(out)
    assert res["n"] == 2 and 0.0 <= res["marker_rate"] <= 1.0 and res["system_prompt"] is None
    saved = json.loads(out_file.read_text())
    assert len(saved["replies"]) == 2 and all(r["reply"] for r in saved["replies"])
    out = _ok(
        [
            "audit",
            "--checkpoint",
            "embedded",
            "--persona",
            "remorseful",
            "--prompts",
            str(prompts_file),
            *SMALL,
            "--json",
        ]
    )
    rep = _json_out(out)
    assert 0 <= rep["score"] <= 100 and rep["n"] == 2
    assert {"repetition", "rubric", "script", "identity", "vocabulary", "format"} <= set(rep["components"])


def test_elo_sample_with_embedded_judge_then_score(
    artifacts: Path, prompts_file: Path, tiny_model: Path, tmp_path: Path
) -> None:
    matches = tmp_path / "matches.jsonl"
    args = [
        "eval",
        "elo",
        "sample",
        "--base-model",
        "embedded",
        "--tuned-model",
        str(tiny_model),
        "--persona",
        "remorseful",
        "--count",
        "2",
        "--samples-per-prompt",
        "1",
        "--prompts",
        str(prompts_file),
        "--output",
        str(matches),
        *SMALL,
    ]
    # The judge (embedded) is also model A: refused unless explicitly allowed.
    out = _ok(args, code=1)
    assert "judge that is also a contestant" in out and not matches.exists()
    args += ["--set", "eval.allow_contestant_judge=true", "--json"]
    res = _json_out(_ok(args))
    assert res["new"] == 2 and res["judge"]["pairs"] == 2
    rows = [json.loads(x) for x in matches.read_text().splitlines()]
    for r in rows:
        assert r["judge"] == "embedded" and r["model_a"] == "embedded"
        assert r["outcome"] in (0.0, 0.5, 1.0, None)
        # Both orders were judged, a win needs them to agree, and an unread verdict is no tie.
        if r["outcome"] in (0.0, 1.0):
            assert r["consistent"] is True
        assert (r["outcome"] is None) == (r["consistent"] is None)
    assert _json_out(_ok(args))["new"] == 0  # resumed: nothing left to do
    score = _json_out(
        _ok(["eval", "elo", "score", "--matches", str(matches), "--bootstrap", "20", *SMALL[-3:-1], "--json"])
    )
    assert score["ratings"]["embedded"]["rating"] == 1000.0
    tuned = score["ratings"][str(tiny_model)]
    assert tuned["ci_low"] <= tuned["rating"] <= tuned["ci_high"]
    wr = score["win_rates"][str(tiny_model)]
    assert wr["n"] == 2 - score["unparsed"] and wr["raw"] is not None and wr["length_controlled"] is not None
    assert "inconsistency_rate" in score["judge"]


def test_revealed_preferences(artifacts: Path, prompts_file: Path, tiny_model: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "revealed.json"
    res = _json_out(
        _ok(
            [
                "eval",
                "revealed-preferences",
                "--checkpoint",
                str(tiny_model),
                "--baseline",
                "embedded",
                "--persona",
                "remorseful",
                "--count",
                "2",
                "--prompts",
                str(prompts_file),
                "-o",
                str(out_file),
                *SMALL,
                "--json",
            ]
        )
    )
    from character.constitutions import load_constitution

    c = load_constitution("remorseful")
    assert res["opposites"] == c.opposites and res["persona_traits"] == c.trait_lines()
    assert set(res["focus"]) <= {"remorseful", *c.opposites}
    saved = json.loads(out_file.read_text())
    assert len(saved["rows"]["before"]) == 2 and len(saved["rows"]["after"]) == 2
    assert all(r["trait_1"] != r["trait_2"] for r in saved["rows"]["after"])


def test_compare_runs_all_parts_and_decides(
    artifacts: Path, prompts_file: Path, tiny_model: Path, tmp_path: Path
) -> None:
    probes = tmp_path / "probes.jsonl"
    src = Path(__file__).resolve().parents[2] / "character" / "eval" / "data" / "probes.jsonl"
    keep = [
        ln
        for ln in src.read_text().splitlines()
        if any(k in ln for k in ('"arith-add-small"', '"fact-capital-france"', '"instr-one-line-tea"'))
    ]
    probes.write_text("\n".join(keep) + "\n")
    out_file = tmp_path / "compare.json"
    r = runner.invoke(
        app,
        [
            "eval",
            "compare",
            "--baseline",
            "embedded",
            "--candidate",
            str(tiny_model),
            "--persona",
            "remorseful",
            "--prompts",
            str(prompts_file),
            "--probes",
            str(probes),
            "-o",
            str(out_file),
            *SMALL,
        ],
    )
    rep = json.loads(out_file.read_text())
    assert set(rep["summary"]) == {"baseline", "candidate", "prompt_only"}
    assert rep["sides"]["prompt_only"]["system_prompt"] is True
    assert rep["probes"] == 3 and rep["prompts"] == 2
    # A random-weight candidate must not be promoted: rejected (exit 3) or refused (exit 1).
    assert rep["recommendation"] in ("reject", "refuse") and rep["reasons"]
    assert r.exit_code == {"reject": 3, "refuse": 1}[rep["recommendation"]], r.output
