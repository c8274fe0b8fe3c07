"""`character generate prompts` on the embedded model: one trait, a few dozen tokens, then resume.

Kept small on purpose (the 135M model on 2 shared CPU cores): it checks the real wiring (config,
backend, prefill continuation, parsing, JSONL output, summary, resume refusal and continuation),
not the quality of a 135M model's questions.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app
from character.constitutions import load_constitution
from character.prompts import bank
from character.prompts.expand import format_reason

runner = CliRunner()


def test_generate_prompts_embedded_then_resume(artifacts: Path) -> None:
    c = load_constitution("pirate")
    hand = len(c.traits[0].questions)
    args = ["generate", "prompts", "--persona", "pirate", "--traits", "1", "--per-trait", str(hand + 2),
            "--rounds", "1", "--max-new-tokens", "40"]  # fmt: skip
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    out = artifacts / "prompts" / "pirate.jsonl"
    summary = json.loads((artifacts / "prompts" / "pirate.summary.json").read_text())
    assert summary["rounds"] == 1 and summary["teacher"] == "embedded"
    assert summary["cost"]["prompts"]["embedded"]["completion_tokens"] > 0
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    # The model continued the list: something was parsed (kept or dropped with a reason).
    assert rows or summary["dropped"], summary
    for r in rows:
        assert r["trait_index"] == 0 and r["trait"] == c.traits[0].trait and format_reason(r["text"]) is None
    assert len(rows) <= 2 and summary["added"] == len(rows)

    # Existing data: refused without --resume, continued with it (never past the target, no duplicates).
    if rows:
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, [*args, "--resume"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows2 = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    assert rows2[: len(rows)] == rows and len(rows2) <= 2
    assert len({r["id"] for r in rows2}) == len(rows2)
    # The bank picks the file up from the default location.
    texts = {p.text for p in bank.persona_prompts(c)} | {p.text for p in bank._persona_all(c, None)[1]}
    assert {r["text"] for r in rows2} <= texts
