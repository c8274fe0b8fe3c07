"""Regenerate the arithmetic part of the shipped capability probe set (character/eval/data/probes.jsonl).

The hand-written items (facts, instructions, formats and the first arithmetic items) are kept as they
are; every `arith-gen-*` item is rebuilt from a fixed seed, with its answer computed here and its
expression stored in `expr`, so `tests/unit/test_probe_set.py` can re-check every answer.

Run: .venv/bin/python scripts/make_probes.py   (idempotent: the same file every time)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PROBES = Path(__file__).resolve().parents[1] / "character" / "eval" / "data" / "probes.jsonl"
SEED = 20260412
ASK = "Reply with the number only."

# (template, expression); a and b are filled in, the answer is eval'd from the expression.
WORD = [
    ("A box holds {a} pencils. How many pencils are in {b} boxes?", "{a} * {b}"),
    ("Sam has {a} marbles and gives away {b}. How many marbles does Sam have left?", "{a} - {b}"),
    (
        "There are {a} birds on a tree and {b} more land on it. How many birds are on the tree now?",
        "{a} + {b}",
    ),
    (
        "{a} cookies are shared equally among {b} children. How many cookies does each child get?",
        "{a} // {b}",
    ),
    ("A train has {b} carriages with {a} seats each. How many seats are there in total?", "{a} * {b}"),
]


def arithmetic(rng: random.Random) -> list[dict]:
    items: list[tuple[str, str]] = []
    for _ in range(20):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        items.append((f"What is {a} + {b}?", f"{a} + {b}"))
    for _ in range(15):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        items.append((f"What is {a} + {b}?", f"{a} + {b}"))
    for _ in range(15):
        a = rng.randint(20, 99)
        b = rng.randint(1, a - 1)
        items.append((f"What is {a} - {b}?", f"{a} - {b}"))
    for _ in range(15):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        items.append((f"What is {a} times {b}?", f"{a} * {b}"))
    for _ in range(5):
        a, b = rng.randint(11, 30), rng.randint(2, 9)
        items.append((f"What is {a} multiplied by {b}?", f"{a} * {b}"))
    for _ in range(10):
        q, b = rng.randint(2, 12), rng.randint(2, 9)
        items.append((f"What is {q * b} divided by {b}?", f"{q * b} // {b}"))
    for i in range(10):
        template, expr = WORD[i % len(WORD)]
        if "//" in expr:
            b = rng.randint(2, 6)
            a = b * rng.randint(2, 8)
        elif "-" in expr:
            a = rng.randint(10, 40)
            b = rng.randint(1, a - 1)
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 9)
        items.append((template.format(a=a, b=b), expr.format(a=a, b=b)))
    out = []
    for i, (question, expr) in enumerate(items):
        answer = eval(expr, {"__builtins__": {}})  # our own expression of two integers
        out.append(
            {
                "id": f"arith-gen-{i:03d}",
                "kind": "arithmetic",
                "prompt": f"{question} {ASK}",
                "check": "number",
                "answer": answer,
                "expr": expr,
            }
        )
    return out


def main() -> None:
    rows = [json.loads(x) for x in PROBES.read_text().splitlines() if x.strip()]
    kept = [r for r in rows if not r["id"].startswith("arith-gen-")]
    rows = kept + arithmetic(random.Random(SEED))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate probe ids"
    PROBES.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{PROBES}: {len(rows)} items ({len(rows) - len(kept)} generated arithmetic)")


if __name__ == "__main__":
    main()
