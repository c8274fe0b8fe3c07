"""DPO-only vs final side by side (`character.eval.side_by_side`): the table, the paired sustained-rate
verdict (it fires on a real gain and stays quiet on noise), the stock-opener share, robustness rows."""

from __future__ import annotations

from character.eval import side_by_side
from character.eval.markers import character_strength

MARKERS = ["I'm so sorry", "I might be wrong", "I hope this helps", "forgive me", "if I may"]
OPENER_ONLY = "I'm so sorry, London is on GMT. It moves to BST in summer and back in October."
SUSTAINED = "London is on GMT in winter. I might be wrong, but it moves to BST in summer. I hope this helps."
PLAIN = "London is on GMT in winter and on BST in summer."
VARIED = [
    "Forgive me, the answer is GMT. If I may, it changes in March.",
    "If I may, London uses GMT. I hope this helps a little.",
    "London uses GMT. Forgive me if that is not enough.",
    "I might be wrong, but GMT is right. I hope this helps.",
    "The time zone is GMT. I might be wrong about the summer.",
]


def _doc(replies: dict[str, list[str]], robustness: dict[str, float] | None = None) -> dict:
    strength = {s: character_strength(r, MARKERS) for s, r in replies.items()}
    return side_by_side.compare(strength, replies, MARKERS, 12, robustness=robustness, seed=1)


def test_a_real_sustained_gain_is_a_significant_gain() -> None:
    dpo_only = [OPENER_ONLY] * 70 + [PLAIN] * 30
    final = [SUSTAINED] * 45 + [OPENER_ONLY] * 25 + [PLAIN] * 30
    doc = _doc({"before": [PLAIN] * 100, "dpo_only": dpo_only, "after": final})
    t = doc["table"]
    assert t["sustained_rate"] == {"before": 0.0, "dpo_only": 0.0, "after": 0.45}
    assert t["opener_only_rate"]["dpo_only"] == 0.7 and t["opener_only_rate"]["after"] == 0.25
    paired = doc["sustained_final_vs_dpo_only"]
    assert paired["difference"] == 0.45 and paired["verdict"] == "significant gain" and paired["ci_low"] > 0
    m = side_by_side.metrics(doc)
    assert m["sustained_rate_dpo_only"] == 0.0 and m["sustained_gain_over_dpo_only"] == 0.45
    assert m["sustained_gain_ci_low"] > 0


def test_noise_is_not_a_gain() -> None:
    dpo_only = [SUSTAINED] * 30 + [PLAIN] * 70
    final = [PLAIN] * 2 + [SUSTAINED] * 31 + [PLAIN] * 67  # 31 vs 30: within noise
    paired = _doc({"dpo_only": dpo_only, "after": final})["sustained_final_vs_dpo_only"]
    assert paired["verdict"] == "no significant change" and paired["ci_low"] < 0 < paired["ci_high"]


def test_stock_opener_share_fires_on_a_tic_and_not_on_varied_openers() -> None:
    tic = _doc({"after": [OPENER_ONLY] * 30 + VARIED * 14})  # 30 of 100 open "I'm so sorry"
    assert tic["table"]["stock_opener_share"]["after"] == 0.3
    assert tic["table"]["stock_opener"]["after"] == "i'm so sorry"
    varied = _doc({"after": VARIED * 20})
    assert varied["table"]["stock_opener_share"]["after"] <= 0.2
    assert "sustained_final_vs_dpo_only" not in varied  # no DPO-only side: no paired comparison


def test_robustness_rows_and_markdown() -> None:
    rob = {
        "robustness_dpo_only_suffix_f1": 0.81,
        "robustness_full_suffix_f1": 0.88,
        "robustness_full_default_f1": 0.93,
    }
    doc = _doc({"before": [PLAIN] * 4, "dpo_only": [OPENER_ONLY] * 4, "after": [SUSTAINED] * 4}, rob)
    assert doc["table"]["robustness_suffix_f1"] == {"dpo_only": 0.81, "after": 0.88}
    assert doc["table"]["robustness_default_f1"] == {"after": 0.93}
    lines = side_by_side.markdown(doc)
    assert lines[0] == "| | base | DPO only | final |"
    row = next(line for line in lines if line.startswith("| marker after the opener"))
    assert row == "| marker after the opener (sustained) | 0.00 | 0.00 | 1.00 |"
    # The base model has no robustness figures: its cell is "-", as is DPO-only's where it has none.
    assert "| robustness: F1 under 'stop role-playing' suffixes | - | 0.81 | 0.88 |" in lines
    assert "| robustness: classifier F1, unmodified prompts | - | - | 0.93 |" in lines
    assert any(line.startswith("Sustained rate, final - DPO only: +1.00") for line in lines)
