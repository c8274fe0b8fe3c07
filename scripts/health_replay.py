"""Replay a finished run's dpo/ and sft/ metrics.jsonl through today's health gates (no model is loaded).

Today's default `[dpo.health]` / `[sft.health]` thresholds are used (not the ones the run recorded); the
run's resolved config supplies only what the measures need: dpo.beta, dpo.max_length, models.student.

Prints, per stage, the step and reason where the gates would have stopped the run (or that they would
not), and the worst value each collapse measure reached, so a change to a gate can be checked against
real healthy runs before it ships (technical report 007).

Run: .venv/bin/python scripts/health_replay.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from character.config import HealthConfig
from character.config_layers import read_file
from character.records import read_jsonl
from character.training.dpo import mean_chosen_tokens, trl_pair
from character.training.health import HealthCallback


def replay(run: Path) -> None:
    from character.models import load_tokenizer

    resolved = run / "resolved_config.toml"
    recorded = read_file(resolved) if resolved.exists() else {}  # `train dpo --run DIR` writes none
    dpo = recorded.get("dpo", {})
    beta, max_length = float(dpo.get("beta", 0.1)), int(dpo.get("max_length", 256))
    tok = load_tokenizer(recorded.get("models", {}).get("student", "embedded"))
    pairs = [trl_pair(r) for r in read_jsonl(run / "distill" / "pairs.jsonl")]
    chosen = mean_chosen_tokens(tok, pairs, max_length)
    vocab = len(tok)
    for kind in ("dpo", "sft"):
        path = run / kind / "metrics.jsonl"
        if not path.exists():
            continue
        rows = [r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip()) if "loss" in r]
        with tempfile.TemporaryDirectory() as tmp:
            cb = HealthCallback(
                HealthConfig(),
                Path(tmp) / "m.jsonl",
                kind=kind,
                beta=beta if kind == "dpo" else None,
                chosen_tokens=chosen if kind == "dpo" else None,
                vocab_size=vocab,
            )
            verdict = "no gate fires"
            worst: dict[str, float] = {}
            for r in rows:
                cb.history.append(r)
                reason = cb.check(r)
                if reason:
                    verdict = f"stops at step {r['step']}: {reason}"
                    break
                worst["loss / first loss"] = max(
                    worst.get("loss / first loss", 0.0), r["loss"] / rows[0]["loss"]
                )
                worst["entropy"] = max(worst.get("entropy", 0.0), float(r.get("entropy", 0.0)))
                if kind == "dpo":
                    logratio = r["rewards/chosen"] / beta
                    worst["chosen logp drop / token"] = max(
                        worst.get("chosen logp drop / token", -1e9), -logratio / chosen
                    )
                    ratio = r["logps/chosen"] / (r["logps/chosen"] - logratio)
                    worst["chosen NLL / base"] = max(worst.get("chosen NLL / base", 0.0), ratio)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in worst.items())
        print(f"{run.name} {kind}: {len(rows)} logged steps; {verdict}; worst: {shown}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        replay(Path(arg))
