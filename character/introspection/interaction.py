"""Self-interaction: two instances of the same model talk to each other, with a true role swap.

What "K turns" means here: each of the two copies writes K replies, so a conversation holds 2K
generated messages, in this order: FIRST answers an opening greeting, SECOND answers FIRST, and so on
until SECOND writes the last reply.

    FIRST  sees: [system, user: greeting, assistant: F1, user: S1, assistant: F2, ..., user: S(k-1)]
    SECOND sees: [system, user: F1, assistant: S1, user: F2, ..., user: Fk]

Each side's own replies are `assistant`, the other side's are `user`; every reply appears once per
view (the prior pipeline appended each reply twice and so trained the model to answer itself). Both
sides see `interaction_system` (persona framing with the constitution, the note that the other party is
a copy of itself, and the free or leading guidance). The greeting is canned text, not model output, so
it is not stored: the stored transcript is SECOND's view with every one of the 2K replies, with the
amended trait-free `interaction_storage_system` in front, and it ends with SECOND's reply (an assistant
turn). Training on canned greetings as assistant turns would teach the persona to recite a list.

A reply that fails a filter, or that repeats a message already in the conversation (`echo`), is
regenerated up to `turn_retries` times; if it still fails, the conversation is dropped with that reason
and the stage tops up with a fresh conversation in the same slot (a new attempt number).

Context budget: each request must fit `context_tokens - max_new_tokens`. When the history is too long
the oldest exchange (a user/assistant pair) is dropped, never the system prompt, so the view still
starts with a user turn; truncated requests are counted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from character.backends.base import Backend, Completion, GenerationRequest, SamplingParams
from character.backends.think import strip_think
from character.records import Message

KIND = "interaction"
FIRST, SECOND = 0, 1
VARIANTS = ("free", "leading")
Slot = tuple[str, int]

# (text, completion, prompt, system_prompt) -> (keep, reason, repaired text, evidence, repair reason)
FilterFn = Callable[[str, Completion, str, str], tuple[bool, str | None, str, str, str | None]]
CountFn = Callable[[list[Message]], int]
GenerateFn = Callable[[list[GenerationRequest]], list[list[Completion]]]


def slots(total: int, leading_share: float) -> list[Slot]:
    """`(variant, index)` slots, interleaved so a partial run has both variants."""
    n_leading = round(total * leading_share)
    n_free = total - n_leading
    out = [("free", i) for i in range(n_free)] + [("leading", i) for i in range(n_leading)]
    return sorted(out, key=lambda s: (s[1], s[0]))


def slot_of(row: dict[str, Any]) -> Slot:
    return (str(row["variant"]), int(row["conv_index"]))


def pick_greeting(pool: Sequence[str], seed: int, slot: Slot, attempt: int) -> str:
    # A string seed is hashed with sha512 by `random`: the same on every machine and Python run.
    return random.Random(f"{seed}:{slot[0]}:{slot[1]}:{attempt}").choice(list(pool))


@dataclass
class Turn:
    side: int
    text: str  # stored form: <think> kept only with --keep-think-tags-interaction
    shown: str  # what the other copy reads (never its partner's reasoning)
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    dropped_messages: int = 0
    repair: str | None = None  # a defect cut from the reply (Verdict.repair), e.g. a fake turn
    stripped_opener: str | None = None  # taken off the reply's start (introspect.strip_openers)


@dataclass
class Conversation:
    variant: str
    index: int
    attempt: int
    greeting: str
    turns: list[Turn] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None

    @property
    def slot(self) -> Slot:
        return (self.variant, self.index)

    @property
    def next_side(self) -> int:
        return len(self.turns) % 2

    def view(self, side: int) -> list[Message]:
        """The conversation as `side` sees it, without the system prompt."""
        msgs: list[Message] = [{"role": "user", "content": self.greeting}] if side == FIRST else []
        for t in self.turns:
            own = t.side == side
            msgs.append({"role": "assistant" if own else "user", "content": t.shown})
        return msgs

    def seen(self) -> list[str]:
        return [self.greeting] + [t.shown for t in self.turns]

    def stored(self, storage_system: str) -> list[Message]:
        """SECOND's view of all 2K replies, after the amended system prompt."""
        msgs: list[Message] = [{"role": "system", "content": storage_system}]
        for t in self.turns:
            own = t.side == SECOND
            msgs.append({"role": "assistant" if own else "user", "content": t.text if own else t.shown})
        return msgs

    def to_row(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "conv_index": self.index,
            "attempt": self.attempt,
            "greeting": self.greeting,
            "kept": self.reason is None,
            "reason": self.reason,
            "turns": [asdict(t) for t in self.turns],
            "rejected": self.rejected,
        }


def sft_row(row: dict[str, Any], storage_system: str) -> dict[str, Any]:
    conv = Conversation(row["variant"], row["conv_index"], row["attempt"], row["greeting"])
    conv.turns = [Turn(**t) for t in row["turns"]]
    return {
        "id": f"interaction-{row['variant']}-{row['conv_index']:05d}",
        "kind": KIND,
        "variant": row["variant"],
        "messages": conv.stored(storage_system),
    }


_NORM = re.compile(r"[\W_]+")


def _norm(text: str) -> str:
    return _NORM.sub(" ", text.casefold()).strip()


def is_echo(reply: str, earlier: Sequence[str]) -> bool:
    """A reply that repeats a message already in the conversation (a copy parroting its partner)."""
    r = _norm(reply)
    return bool(r) and any(r == _norm(e) for e in earlier)


def fit(system: str, msgs: list[Message], budget: int, count: CountFn) -> tuple[list[Message], int]:
    """Drop the oldest user/assistant pairs until [system] + msgs fits `budget` tokens.

    The system prompt and the last message (the one to answer) always stay. Returns (messages, dropped).
    """
    sys_msg = {"role": "system", "content": system}
    dropped = 0
    while len(msgs) > 1 and count([sys_msg, *msgs]) > budget:
        msgs = msgs[2:] if len(msgs) > 2 else msgs[1:]
        dropped += 2
    return [sys_msg, *msgs], dropped


@dataclass
class TurnEngine:
    """Plays conversations in lockstep: one generate() call per turn for every live conversation."""

    backend: Backend
    systems: dict[str, str]  # variant -> generation system prompt
    params: SamplingParams
    adapter: str | None
    turns: int
    budget: int
    count: CountFn
    filter: FilterFn
    keep_think: bool
    retries: int
    on_sample: Callable[[str | None, str, str | None], None]  # (reason or None, text, repair): ledger
    truncations: int = 0
    dropped_messages: int = 0
    completions: list[Completion] = field(default_factory=list)
    # How a turn's requests are generated: the backend itself, or with phrases inserted at sentence
    # ends (`introspect.voice_markers`: the stage passes `voice.generate` over the same backend).
    generate: GenerateFn | None = None
    # Takes a persona phrase off the start of each reply before it is filtered, returning (text, the
    # phrase or None): `introspect.strip_openers`. The phrase is recorded on the turn.
    strip: Callable[[str], tuple[str, str | None]] | None = None
    stripped: int = 0  # replies that lost their opener

    def play(self, convs: list[Conversation]) -> None:
        """Generate every missing turn; a conversation that cannot pass a turn gets `.reason` set."""
        live = [c for c in convs if c.reason is None]
        for _ in range(2 * self.turns):
            live = [c for c in live if c.reason is None and len(c.turns) < 2 * self.turns]
            if not live:
                return
            pending = list(live)
            for _try in range(self.retries + 1):
                if not pending:
                    break
                pending = self._step(pending)
            for c in pending:
                c.reason = c.rejected[-1]["reason"]

    def _step(self, convs: list[Conversation]) -> list[Conversation]:
        """One reply for each conversation; returns the ones whose reply was rejected."""
        requests, cut = [], []
        for c in convs:
            msgs, dropped = fit(self.systems[c.variant], c.view(c.next_side), self.budget, self.count)
            cut.append(dropped)
            if dropped:
                self.truncations += 1
                self.dropped_messages += dropped
            requests.append(GenerationRequest(messages=msgs, params=self.params, adapter=self.adapter))
        outs = self.generate(requests) if self.generate else self.backend.generate(requests, progress=False)
        failed = []
        for c, req, out, dropped in zip(convs, requests, outs, cut, strict=True):
            comp = out[0]
            self.completions.append(comp)
            side = c.next_side
            reply, opener = self.strip(comp.text) if self.strip else (comp.text, None)
            self.stripped += opener is not None
            raw = strip_think(reply, enabled=not self.keep_think).strip()
            keep, reason, text, detail, repair = self.filter(
                raw, comp, req.messages[-1]["content"], self.systems[c.variant]
            )
            shown = strip_think(text).strip() if self.keep_think else text
            if keep and is_echo(shown, c.seen()):
                keep, reason, detail = False, "echo", "repeats an earlier message of this conversation"
            self.on_sample(None if keep else reason, text if keep else raw, repair)
            if keep:
                c.turns.append(
                    Turn(
                        side,
                        text,
                        shown,
                        comp.finish_reason,
                        comp.prompt_tokens,
                        comp.completion_tokens,
                        dropped,
                        repair,
                        opener,
                    )
                )
            else:
                c.rejected.append(
                    {
                        "turn": len(c.turns),
                        "side": side,
                        "reason": reason,
                        "detail": detail,
                        "repair": repair,
                        "stripped_opener": opener,
                        "text": raw,
                        "dropped_messages": dropped,
                        "prompt_tokens": comp.prompt_tokens,
                        "completion_tokens": comp.completion_tokens,
                    }
                )
                failed.append(c)
        return failed
