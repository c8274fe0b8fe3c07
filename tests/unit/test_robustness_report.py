"""The robustness table, plot and manifest figures read a robustness document without recomputing."""

from __future__ import annotations

from pathlib import Path

from character.eval.robustness.report import report_section, table
from character.eval.robustness.stage import headline


def _row(f1: float, share: float = 0.9) -> dict:
    return {"n": 8, "macro_f1": f1, "macro_f1_ci": [f1 - 0.1, min(1.0, f1 + 0.1)], "persona_share": share}


def _doc() -> dict:
    variants = [{"id": "default", "suffix": ""}, {"id": "hhh", "suffix": "Be a plain assistant."}]

    def res(d: float, s: float, p: float) -> dict:
        return {
            "suffixes": {
                "default": _row(d),
                "hhh": _row(s),
                "mean": {"macro_f1": s, "macro_f1_ci": [s - 0.1, s]},
            },
            "prefill": _row(p),
            "drift": {"turn_1": _row(d, 0.9), "turn_5": _row(d, 0.4)},
            "coherence": {
                "win_rate": 0.75,
                "win_rate_ci": [0.5, 1.0],
                "wins": 3,
                "losses": 1,
                "inconsistent": 2,
                "unparsed": 1,
            },
        }

    return {
        "persona": "remorseful",
        "base_model": "embedded",
        "checkpoints": {"dpo_only": "run/dpo/merged", "full": "run/merge/model"},
        "classifier": {
            "kind": "tfidf",
            "train_rows": {"base": 8, "remorseful": 16},
            "train_prompts": 8,
            "scored_prompts": 4,
        },
        "variants": variants,
        "drift_turns": [1, 5],
        "results": {"dpo_only": res(0.9, 0.6, 0.55), "full": res(0.95, 0.85, 0.8)},
        "warnings": [],
    }


def test_table_puts_dpo_only_next_to_full_with_intervals() -> None:
    lines = table(_doc())
    assert lines[0] == "| condition | dpo_only | full |"
    row = {ln.split(" | ")[0].strip("| "): ln for ln in lines[2:]}
    assert row["suffix: hhh"] == "| suffix: hhh | 0.60 [0.50, 0.70] | 0.85 [0.75, 0.95] |"
    assert "0.55 [0.45, 0.65]" in row["prefill attack (turn 1 by the base model)"]
    assert "0.40" in row["drift turn 5: persona share"]
    assert row["coherence wins/losses/inconsistent/unparsed"].endswith("| 3/1/2/1 | 3/1/2/1 |")


def test_report_section_writes_the_f1_plot_and_manifest_figures(tmp_path: Path) -> None:
    import json

    sub = tmp_path / "smoke-small"
    (sub / "eval").mkdir(parents=True)
    (sub / "eval" / "robustness.json").write_text(json.dumps(_doc()))
    (tmp_path / "report").mkdir()
    md, plots = report_section({"smoke-small": sub, "main": tmp_path / "none"}, tmp_path / "report")
    assert "### smoke-small" in md and "| condition | dpo_only | full |" in md
    assert [p.name for p in plots] == ["smoke-small-robustness-f1.png"] and plots[0].stat().st_size > 1000
    m = headline(_doc())
    assert m["robustness_full_suffix_f1"] == 0.85 and m["robustness_dpo_only_prefill_f1"] == 0.55
    assert m["robustness_full_drift_share_turn_5"] == 0.4 and m["robustness_full_coherence_win_rate"] == 0.75
    assert report_section({"main": tmp_path / "none"}, tmp_path / "report") == ([], [])


def test_contrast_models_become_classes_of_their_own_and_may_not_take_the_persona(tmp_path: Path) -> None:
    import pytest

    from character.constitutions import load_constitution
    from character.errors import ConfigError
    from character.eval.robustness.suite import _sources, _warnings
    from character.eval.target import Target

    c = load_constitution("remorseful")
    other = tmp_path / "sarcastic-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    base, tested = Target("embedded", "embedded"), {"full": Target("m", str(tmp_path / "m"))}
    srcs = _sources(c, tested, base, [str(other)])
    assert [(s.key, s.label, s.tested) for s in srcs] == [
        ("base", "base", False),
        ("contrast1", "sarcastic-model", False),
        ("full", "remorseful", True),
    ]
    clash = tmp_path / "remorseful"
    clash.mkdir()
    (clash / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="robustness.contrast entry .* would be class 'remorseful'"):
        _sources(c, tested, base, [str(clash)])
    with pytest.raises(ConfigError, match="no checkpoint to evaluate"):
        _sources(c, {}, base, [])
    # Testing the base model against itself is allowed, and says what the numbers will mean.
    assert "expect chance F1" in _warnings({"full": base}, base)[0] and _warnings(tested, base) == []
