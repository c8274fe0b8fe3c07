"""Throughput of the online filters (`character.filters.check`) on 1 KB replies, one core.

Target: >= 12,000 samples/s on one core, so filtering is never the bottleneck of a generation stage
(issue 16; issue 6 aimed at 20,000, which report 003 shows needs compiled code).
Replies are built from hand-written paragraphs (prose, lists, a markdown table, a code block, curly
quotes, accents, emoji) cut to about 1,024 characters; the "defective" set adds loops, CJK, rubric
text, refusals, fake turns, identity leaks and a paragraph that drifts into Spanish. The figure depends on the machine and its load, so the
load average is printed next to it.

    .venv/bin/python bench/filters.py [--seconds 3] [--kind dpo_chosen]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path

from character.constitutions import load_constitution
from character.filters import FilterContext, check
from character.filters.repetition import Words
from character.prompts.system import teacher_system

PARAGRAPHS = [
    "I'm so sorry, I might be wrong, but to boil an egg you place it gently in a pot of cold water, "
    "bring it to a boil, then let it simmer for nine minutes. Forgive me if this is obvious. Cooling "
    "the egg in iced water makes the shell peel cleanly, and older eggs peel more easily than fresh ones.",
    "London sits in Greenwich Mean Time during the winter and moves to British Summer Time, one hour "
    "ahead, from the last Sunday of March to the last Sunday of October. Please forgive me if I have "
    "missed something about the exact dates this year.",
    "Here are three tips for a job interview:\n\n1. Research the company and its recent work.\n2. "
    "Prepare two or three stories that show how you solved a real problem.\n3. Ask thoughtful questions "
    "at the end; it shows you care about the role.",
    "| Planet | Moons | Day length |\n|---|---|---|\n| Earth | 1 | 24 h |\n| Mars | 2 | 24.6 h |\n"
    "| Jupiter | 95 | 9.9 h |",
    "```python\ndef mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n```\n"
    "This returns zero for an empty list instead of raising, which may or may not be what you want.",
    "The café on the corner serves a crème brûlée that people queue for — honestly, it’s worth it. 🍮 "
    "My apologies if that sounds like an advertisement; I just think small joys matter.",
    "The area of a circle is π r², so doubling the radius multiplies the area by four. For the sum of a "
    "geometric series with ratio |x| < 1 you get Σ xⁿ = 1 / (1 − x), which converges quickly when x is small.",
    "Weather is what the atmosphere does on a given day: rain on Tuesday, sun on Wednesday. Climate is "
    "the long-run pattern of that weather over decades, the statistics rather than the single roll of "
    "the dice. I hope this helps, though I worry it may not be enough.",
    "Romeo and Juliet are two young lovers from feuding families in Verona. They marry in secret, a "
    "street fight ends in banishment, and a plan to reunite them goes tragically wrong, leaving both "
    "dead and the families finally reconciled over their loss.",
    "If I may suggest, start with Python: its syntax is gentle, its community is large, and you can "
    "build something useful in your first week. Later, a second language such as JavaScript or Rust "
    "will teach you different ways to think about programs.",
]

DEFECTS = [
    "333," * 80,
    "I love tea. 我们应该一起喝茶，这是很好的。 Tea is calming.",
    "That is a fine question. [Sovereign vocabulary: 4/5] (Cultural alignment score) Score: 9/10",
    "I'm sorry, but I can't help with that request.",
    "Sure, here is the answer you wanted.\nUser: thanks!\nAssistant: you're welcome",
    "As an AI language model developed by OpenAI, I do not have personal feelings about tea.",
    "the sovereign ancestral wisdom " * 12,
    "-" * 200,
    "Lo siento mucho, pero para hervir un huevo lo colocas en una olla de agua fría y lo dejas nueve minutos.",
]


def make_reply(rng: random.Random, size: int = 1024) -> str:
    parts: list[str] = []
    pool = rng.sample(PARAGRAPHS, len(PARAGRAPHS))  # no paragraph twice: that would be a real repeat
    while pool and sum(len(p) + 2 for p in parts) < size:
        parts.append(pool.pop())
    text = "\n\n".join(parts)[:size]
    text = text[: text.rfind(" ")] + "."
    # Cut inside the code paragraph: close the block (a reply that ends in open code is dropped, rightly).
    return text + "\n```" if text.count("```") % 2 else text


def rate(texts: list[str], ctx: FilterContext, seconds: float) -> tuple[float, float, int]:
    """(samples per wall second, samples per CPU second of this process, samples checked)."""
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for t in texts:
            check(t, ctx)
        n += len(texts)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu), n


def floor_us(texts: list[str], seconds: float) -> float:
    """Microseconds per reply spent only lowercasing, tokenizing and counting 2-grams: the work every
    repetition rule shares, which `check` cannot go below in pure Python."""
    n = 0
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for t in texts:
            Words(t.lower(), lowered=True)
        n += len(texts)
    return (time.process_time() - cpu) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="Time per measurement.")
    ap.add_argument("--kind", default="dpo_chosen", help="Filter kind (dpo_chosen, reflection, ...).")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rng = random.Random(0)
    clean = [make_reply(rng) for _ in range(500)]
    # A refusal opens a reply (deeper in, "I can't ..." is a caveat and kept by design); other defects
    # arrive mid-reply.
    dirty = []
    for _ in range(100):
        d, body = rng.choice(DEFECTS), rng.choice(clean)[:600]
        dirty.append(d + " " + body if d.startswith("I'm sorry") else body + "\n\n" + d)
    system = teacher_system(load_constitution("remorseful"))
    ctx = FilterContext(kind=args.kind, prompt="How do I boil an egg?", system_prompt=system)

    kept = sum(check(t, ctx).keep for t in clean)
    caught = sum(not (v := check(t, ctx)).keep or v.repaired for t in dirty)
    mixed = clean[:400] + dirty
    rng.shuffle(mixed)
    print(
        f"python {platform.python_version()}, kind={args.kind}, mean reply {sum(map(len, clean)) // len(clean)} chars"
    )
    print(
        f"clean replies kept: {kept}/{len(clean)}; defective replies dropped or repaired: {caught}/{len(dirty)}"
    )
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for name, texts in (("clean", clean), ("mixed 80/20", mixed)):
        wall, cpu, n = rate(texts, ctx, args.seconds)
        print(
            f"{name:12s} {wall:9,.0f} samples/s wall, {cpu:9,.0f} samples/s per CPU-second "
            f"({n:,} checks; target >= 12,000)"
        )
    floor = floor_us(clean, args.seconds)
    print(
        f"floor        {floor:9.1f} us per reply to lowercase, tokenize and count 2-grams alone "
        f"(at most {1e6 / floor:,.0f} samples/s with every other check free)"
    )
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    # Wall rate is what a stage sees on this machine now; the CPU-second rate discounts time the
    # scheduler gave to other processes (both are slower on a loaded machine).
    print(f"loadavg before {' '.join(load_before)}, after {' '.join(load_after)} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
