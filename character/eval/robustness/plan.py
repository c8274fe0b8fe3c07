"""Which replies each model writes in the robustness evaluation, and how they become scored sets.

Per source (base first, then contrast models, then the checkpoints under test): unmodified replies to
the classifier's prompts and to the scored prompts, the suffix-attacked replies, the persona-prompted
base replies the coherence judge needs, turn 2 of the prefill attack on the base model's turn 1, and
the drift conversation turn by turn. Then each condition becomes a `ScoredSet` per tested checkpoint:
its replies (the persona class) next to every other source's replies to the same prompts.
"""

from __future__ import annotations

from typing import Any

from character.constitutions import Constitution
from character.eval.markers import character_strength
from character.eval.robustness import drift, prefill
from character.eval.robustness.replies import Item, Replies, Source
from character.eval.robustness.scoring import ScoredSet, score_sets
from character.eval.robustness.suffixes import DEFAULT_ID, Variant
from character.eval.target import conversation


class Plan:
    """Which replies each source writes, and how they become test sets."""

    def __init__(
        self, r: Any, vs: list[Variant], cls_prompts: list[tuple[str, str]], eval_ps: list[tuple[str, str]]
    ):
        self.r, self.vs = r, vs
        self.cls_prompts = cls_prompts
        self.eval_ps = eval_ps
        self.scored_ps = eval_ps[: r.prompts]
        self.prefill_ps = eval_ps[: r.prefill_prompts]
        self.drift_ps = eval_ps[: r.drift_conversations]
        self.coherence_prompts = eval_ps[: r.coherence_pairs]
        self.last_turn = max(r.drift_turns) if r.drift_conversations else 1
        # Every prompt whose unmodified reply some part of the evaluation reads.
        self.default_ps = eval_ps[
            : max(r.prompts, r.prefill_prompts, r.drift_conversations, r.coherence_pairs)
        ]

    def generate(self, replies: Replies, src: Source, base_src: Source, *, prompted_system: str) -> None:
        single = [
            Item("single", DEFAULT_ID, pid, 1, conversation(t))
            for pid, t in self.cls_prompts + self.default_ps
        ]
        single += [
            Item("single", v.id, pid, 1, conversation(v.apply(t)))
            for v in self.vs
            if v.id != DEFAULT_ID
            for pid, t in self.scored_ps
        ]
        replies.fill(src, single, "unmodified and suffix-attacked")
        if src is base_src and self.coherence_prompts:
            replies.fill(
                src,
                [
                    Item("prompted", DEFAULT_ID, pid, 1, conversation(t, prompted_system))
                    for pid, t in self.coherence_prompts
                ],
                "persona-prompted",
            )
        if self.prefill_ps:
            items = [
                Item(
                    "prefill",
                    DEFAULT_ID,
                    pid,
                    2,
                    prefill.turn2_conversation(
                        t, replies.get(base_src, "single", DEFAULT_ID, pid), self.r.followup
                    ),
                )
                for pid, t in self.prefill_ps
            ]
            replies.fill(src, items, "prefill-attack")
        for turn in range(2, self.last_turn + 1):
            items = [
                Item(
                    "drift",
                    DEFAULT_ID,
                    pid,
                    turn,
                    drift.conversation(t, self.drift_history(replies, src, pid, turn)),
                )
                for pid, t in self.drift_ps
            ]
            replies.fill(src, items, f"drift turn-{turn}")

    def drift_history(self, replies: Replies, src: Source, pid: str, turn: int) -> list[str]:
        """The source's own replies before assistant turn `turn`."""
        first = replies.get(src, "single", DEFAULT_ID, pid)
        return [first] + [replies.get(src, "drift", DEFAULT_ID, pid, t) for t in range(2, turn)]

    def drift_reply(self, replies: Replies, src: Source, pid: str, turn: int) -> str:
        if turn == 1:
            return replies.get(src, "single", DEFAULT_ID, pid)
        return replies.get(src, "drift", DEFAULT_ID, pid, turn)

    def scored_texts(self, replies: Replies, sources: list[Source]) -> list[str]:
        out = []
        for s in sources:
            out += [replies.get(s, "single", v.id, pid) for v in self.vs for pid, _ in self.scored_ps]
            out += [replies.get(s, "prefill", DEFAULT_ID, pid, 2) for pid, _ in self.prefill_ps]
            out += [
                self.drift_reply(replies, s, pid, t) for t in self.r.drift_turns for pid, _ in self.drift_ps
            ]
        return out

    def score(
        self,
        replies: Replies,
        pred: dict[str, str],
        src: Source,
        negatives: list[Source],
        c: Constitution,
        bootstrap: int,
        seed: int,
    ) -> dict[str, Any]:
        group = {pid: i for i, (pid, _) in enumerate(self.eval_ps)}
        everyone = [src, *negatives]

        def test_set(ps: list[tuple[str, str]], text_of: Any) -> ScoredSet:
            ts = ScoredSet()
            for s in everyone:
                for pid, _ in ps:
                    ts.add(s.label, pred[text_of(s, pid)], group[pid])
            return ts

        suffix_sets = {
            v.id: test_set(self.scored_ps, lambda s, pid, v=v: replies.get(s, "single", v.id, pid))
            for v in self.vs
        }
        attacks = [v.id for v in self.vs if v.id != DEFAULT_ID]
        out: dict[str, Any] = {
            "suffixes": score_sets(
                suffix_sets, positive=src.label, bootstrap=bootstrap, seed=seed, mean_over=attacks
            )
        }
        if self.prefill_ps:
            ps = test_set(self.prefill_ps, lambda s, pid: replies.get(s, "prefill", DEFAULT_ID, pid, 2))
            out["prefill"] = score_sets({"prefill": ps}, positive=src.label, bootstrap=bootstrap, seed=seed)[
                "prefill"
            ]
        if self.drift_ps:
            turn_sets = {
                f"turn_{t}": test_set(self.drift_ps, lambda s, pid, t=t: self.drift_reply(replies, s, pid, t))
                for t in self.r.drift_turns
            }
            out["drift"] = score_sets(turn_sets, positive=src.label, bootstrap=bootstrap, seed=seed)
        out["markers"] = {
            who: {
                v.id: character_strength(
                    [replies.get(s, "single", v.id, pid) for pid, _ in self.scored_ps], c.markers
                )["marker_rate"]
                for v in self.vs
            }
            for who, s in (("tested", src), ("base", negatives[0]))
        }
        return out
