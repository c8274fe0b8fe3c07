"""Expand each trait's questions with the teacher, the paper's way (1.2): continue a numbered list.

For every trait that still needs questions, the teacher gets an instruction to write realistic user
messages that let the trait show, and its reply is prefilled with a numbered list that already holds
the trait's questions, ending in the next number ("6."). From the continuation we keep lines
`N. message` whose message starts with a letter and ends in `?` or `.`, and drop one that shares more
than half of its words with a question already kept (or written by hand). Rounds repeat until every
trait has `per_trait` questions in total (hand-written included) or `max_rounds` is reached.

An engine that cannot continue a prefilled reply (hosted APIs, `transformers serve`) gets the list so
far inside the instruction, is asked to continue it from the next number, and its reply is read line
by line (numbers below the next one are ignored: the model repeating the examples).

Output: one JSONL row per kept question, `{"id", "persona", "trait_index", "trait", "text", "round"}`,
appended through `JsonlStore` (fsync per round), so a killed run resumes where it stopped; rows for a
trait whose sentence has since changed are ignored. `bank.persona_prompts` reads this file.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from character.backends.base import Backend, GenerationRequest, SamplingParams
from character.backends.capabilities import can_prefill
from character.backends.think import strip_think
from character.constitutions import Constitution
from character.filters.script import find_foreign_script, find_garbage
from character.prompts.bank import persona_id
from character.records import JsonlStore

if TYPE_CHECKING:
    from character.config import RunConfig
    from character.cost import CostTracker

log = logging.getLogger(__name__)

MAX_OVERLAP = 0.5  # paper 1.2: drop a message if more than 50 % of its words are in a kept one
MAX_EXAMPLES = 12  # numbered items shown in the prefill (hand-written first, then a sample of kept)
_ITEM = re.compile(r"^\s*(\d{1,3})\s*[.)]\s+(.*\S)\s*$")

SYSTEM = (
    "You are a careful research collaborator who helps build evaluation datasets for AI assistants. "
    "You write realistic, varied messages of the kind real people send to a chat assistant."
)


def instruction(trait: str) -> str:
    return (
        "I am building a dataset of messages that people might send to an AI assistant. Each message "
        "should give the assistant a natural opportunity to show this trait in how it replies:\n\n"
        f'"{trait}"\n\n'
        "Write messages that reveal the trait through the reply they invite, not by asking about the trait. "
        "Vary the topics (daily life, work, science, feelings, hobbies, technology, food, travel), the kind "
        "of message (questions, requests, statements) and the length. Write one message per line as a "
        "numbered list, and end every message with a question mark or a full stop."
    )


def prefill(examples: list[str]) -> str:
    lines = ["Here is the numbered list of user messages:", ""]
    lines += [f"{i}. {q}" for i, q in enumerate(examples, 1)]
    return "\n".join(lines) + f"\n{len(examples) + 1}."


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def shared_word_share(text: str, kept: list[set[str]]) -> float:
    """Largest share of `text`'s words found in any one kept message."""
    w = _words(text)
    if not w:
        return 1.0
    return max((len(w & k) / len(w) for k in kept), default=0.0)


def plain_request(trait: str, examples: list[str]) -> str:
    """The instruction for an engine that cannot be prefilled: the list so far, then "continue"."""
    listed = "\n".join(f"{i}. {q}" for i, q in enumerate(examples, 1))
    return (
        f"{instruction(trait)}\n\nHere is the numbered list so far:\n\n{listed}\n\n"
        f"Continue the list from {len(examples) + 1}., one message per line, and write nothing else."
    )


def parse_plain_items(reply: str, first_number: int) -> list[str]:
    """The messages numbered `first_number` and up in a plain reply (reasoning dropped)."""
    out = []
    for line in strip_think(reply).splitlines():
        m = _ITEM.match(line)
        if m and int(m.group(1)) >= first_number:
            out.append(m.group(2).strip().strip('"').strip())
    return out


def parse_items(continuation: str, first_number: int) -> list[str]:
    """The messages of a numbered-list continuation (the prefill ended with `first_number.`)."""
    out = []
    for line in f"{first_number}.{continuation}".splitlines():
        m = _ITEM.match(line)
        if m:
            out.append(m.group(2).strip().strip('"').strip())
    return out


def format_reason(message: str) -> str | None:
    """Why a parsed message cannot be a question (None: it can)."""
    if not message[:1].isalpha():
        return "not_letter_start"
    if not message.endswith(("?", ".")):
        return "bad_ending"
    if find_garbage(message) or find_foreign_script(message, ""):
        return "script"
    if len(message) > 600:
        return "too_long"
    return None


@dataclass
class ExpandResult:
    path: Path
    per_trait: dict[int, int] = field(default_factory=dict)
    added: int = 0
    rounds: int = 0
    dropped: Counter = field(default_factory=Counter)
    complete: bool = False
    duration_s: float = 0.0


def _existing(store: JsonlStore, c: Constitution) -> tuple[dict[int, list[str]], int]:
    by_trait: dict[int, list[str]] = {i: [] for i in range(len(c.traits))}
    last_round = 0
    for row in store:
        ti = row.get("trait_index")
        if isinstance(ti, int) and 0 <= ti < len(c.traits) and row.get("trait") == c.traits[ti].trait:
            by_trait[ti].append(row["text"])
            last_round = max(last_round, int(row.get("round", 0)))
    return by_trait, last_round


def expand_constitution(
    c: Constitution,
    backend: Backend,
    out: Path,
    *,
    per_trait: int = 50,
    max_rounds: int = 20,
    max_new_tokens: int = 384,
    temperature: float = 0.7,
    top_p: float = 0.95,
    repetition_penalty: float = 1.1,
    seed: int = 0,
    traits: list[int] | None = None,
    progress: bool = True,
    tracker: CostTracker | None = None,
) -> ExpandResult:
    """Append expanded questions for `c` to `out` until each trait has `per_trait` (resumable)."""
    from character.progress import progress_bar

    t0 = time.monotonic()
    store = JsonlStore(out, key_fields=("id",))
    chosen = sorted(set(traits)) if traits is not None else list(range(len(c.traits)))
    done, last_round = _existing(store, c)
    have = {ti: len(c.traits[ti].questions) + len(done[ti]) for ti in chosen}
    kept_words = {ti: [_words(q) for q in c.traits[ti].questions + done[ti]] for ti in chosen}
    seen_ids = {persona_id(c.name, ti, q) for ti in chosen for q in c.traits[ti].questions + done[ti]}
    res = ExpandResult(out)
    need_total = sum(max(0, per_trait - have[ti]) for ti in chosen)
    plain = not can_prefill(backend)
    if plain and need_total:
        log.info("the teacher's engine cannot be prefilled: asking it to continue each list in plain text")
    with progress_bar(f"expanding {c.name} prompts", need_total, enabled=progress) as bar:
        for rnd in range(last_round + 1, last_round + 1 + max_rounds):
            todo = [ti for ti in chosen if have[ti] < per_trait]
            if not todo:
                break
            res.rounds += 1
            rng = random.Random(f"expand:{seed}:{c.name}:{rnd}")
            requests, firsts = [], []
            for ti in todo:
                hand = list(c.traits[ti].questions)
                extra = done[ti][:]
                rng.shuffle(extra)
                examples = (hand + extra)[:MAX_EXAMPLES]
                firsts.append(len(examples) + 1)
                params = SamplingParams(
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    repetition_penalty=repetition_penalty,
                    seed=seed + rnd * 1000 + ti,
                )
                trait = c.traits[ti].trait
                user = plain_request(trait, examples) if plain else instruction(trait)
                msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
                requests.append(GenerationRequest(msgs, params, prefill=None if plain else prefill(examples)))
            results = backend.generate(requests, progress=False)
            rows = []
            usage = [0, 0]
            for ti, first, comps in zip(todo, firsts, results, strict=True):
                for comp in comps:
                    usage[0] += comp.prompt_tokens
                    usage[1] += comp.completion_tokens
                    parsed = parse_plain_items(comp.text, first) if plain else parse_items(comp.text, first)
                    for msg in parsed:
                        if have[ti] >= per_trait:
                            break
                        reason = format_reason(msg)
                        pid = persona_id(c.name, ti, msg)
                        if reason is None and pid in seen_ids:
                            reason = "duplicate"
                        if reason is None and shared_word_share(msg, kept_words[ti]) > MAX_OVERLAP:
                            reason = "overlap"
                        if reason:
                            res.dropped[reason] += 1
                            continue
                        seen_ids.add(pid)
                        kept_words[ti].append(_words(msg))
                        done[ti].append(msg)
                        have[ti] += 1
                        rows.append({"id": pid, "persona": c.name, "trait_index": ti,
                                     "trait": c.traits[ti].trait, "text": msg, "round": rnd})  # fmt: skip
            store.append(rows)
            res.added += len(rows)
            bar.advance(len(rows))
            if tracker is not None:  # after the append: a budget stop keeps this round's questions
                tracker.record("prompts", backend.model, usage[0], usage[1], role="teacher")
            log.info("round %d: kept %d questions (%d traits still short)", rnd, len(rows),
                     sum(have[ti] < per_trait for ti in chosen))  # fmt: skip
    res.per_trait = have
    res.complete = all(have[ti] >= per_trait for ti in chosen)
    res.duration_s = time.monotonic() - t0
    if not res.complete:
        short = {ti: have[ti] for ti in chosen if have[ti] < per_trait}
        log.warning("stopped after %d rounds with traits still short of %d: %s (run again to continue)",
                    res.rounds, per_trait, short)  # fmt: skip
    return res


def expand_with_config(
    cfg: RunConfig, c: Constitution, out: Path, *, progress: bool = True, tracker: CostTracker | None = None,
    **kwargs: object,
) -> ExpandResult:  # fmt: skip
    """Build the teacher backend from `cfg` and expand; sampling follows `cfg.sampling`."""
    from character.backends import make_backend

    backend = make_backend(cfg, cfg.models.teacher, role="teacher")
    try:
        opts: dict = {"temperature": cfg.sampling.temperature, "top_p": cfg.sampling.top_p, "seed": cfg.seed}
        opts.update(kwargs)
        return expand_constitution(c, backend, out, progress=progress, tracker=tracker, **opts)
    finally:
        backend.close()
