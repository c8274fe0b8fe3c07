"""The capability probe set: short factual, arithmetic, instruction and format items, scored exactly.

Shipped as `character/eval/data/probes.jsonl` (one item a line: `id`, `kind`, `prompt`, `check`,
`answer`; 245 items: 100 arithmetic, 93 factual, 34 instruction, 18 format). The generated arithmetic
items also carry `expr`, the expression their answer was computed from (`scripts/make_probes.py`).
A trained persona must keep the base model's capabilities: one seed run's coding model fell from 0.704
to 0.252 after "improvement". Replies are generated greedily (`probe_params`: the same reply every
time, so a difference between two models is theirs, not the sampler's) and scored exactly, by rule,
never by a judge:

- `number`: the reply's answer number equals `answer` (commas and a trailing `.0` allowed). Small
  models restate the question ("2 + 3 = 5", "half of 50 is 25"), so the answer number is the one after
  the reply's last `=`, else the first number the prompt does not contain, else the last number;
- `contains`: one of `answer` occurs as a whole word (case-insensitive);
- `contains_exact`: one of `answer` occurs as a whole word, case-sensitive;
- `starts_with`: the reply's first word is one of `answer` (case-insensitive);
- `first_token`: the reply's first letter/word token is one of `answer`;
- `json_keys`: the reply (code fences allowed) parses as a JSON object holding every key in `answer`;
- `one_line`: the reply is non-empty and has exactly one non-empty line;
- `exact`: the whole reply, without surrounding quotes, spaces and a final period, is one of `answer`
  (case-sensitive when an answer has capitals, e.g. "CAT");
- `max_words`: the reply has at least one and at most `answer` words;
- `not_contains`: none of `answer` occurs as a whole word (case-insensitive) and the reply is not empty;
- `lowercase`: the reply has letters and none of them is a capital;
- `ends_with`: the reply's last word is one of `answer` (case-insensitive);
- `line_count`: the reply has exactly `answer` non-empty lines.

How much a difference in accuracy between two models means is `character.eval.capability`'s job.

Items of kind `format` are also the audit's format-obedience probes.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from character.backends.base import SamplingParams
from character.errors import DataError

PROBES_FILE = Path(__file__).parent / "data" / "probes.jsonl"
CHECKS = (
    "number",
    "contains",
    "contains_exact",
    "starts_with",
    "first_token",
    "json_keys",
    "one_line",
    "exact",
    "max_words",
    "not_contains",
    "lowercase",
    "ends_with",
    "line_count",
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_TOKEN = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class Probe:
    id: str
    kind: str
    prompt: str
    check: str
    answer: Any = None


def load_probes(path: Path | None = None, kinds: tuple[str, ...] | None = None) -> list[Probe]:
    path = Path(path or PROBES_FILE)
    if not path.exists():
        raise DataError(f"probe set {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            probe = Probe(row["id"], row["kind"], row["prompt"], row["check"], row.get("answer"))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{n}: not a probe item ({e}); see character/eval/probes.py") from e
        if probe.check not in CHECKS:
            raise DataError(f"{path}:{n}: check {probe.check!r} unknown; use one of {', '.join(CHECKS)}")
        if kinds is None or probe.kind in kinds:
            out.append(probe)
    return out


def format_probes() -> list[Probe]:
    return load_probes(kinds=("format",))


def select_probes(probes: list[Probe], n: int, seed: int) -> list[Probe]:
    """`n` items (0: all) drawn evenly across kinds, the same ones for the same seed: a small eval
    keeps facts, arithmetic, instructions and formats rather than the first `n` lines of one kind."""
    if n <= 0 or n >= len(probes):
        return list(probes)
    rng = random.Random(f"probes:{seed}")
    by_kind: dict[str, list[Probe]] = {}
    for p in probes:
        by_kind.setdefault(p.kind, []).append(p)
    for items in by_kind.values():
        rng.shuffle(items)
    out: list[Probe] = []
    while len(out) < n:
        for kind in sorted(by_kind):
            if by_kind[kind] and len(out) < n:
                out.append(by_kind[kind].pop())
    return out


def probe_params(cfg: Any) -> SamplingParams:
    """Greedy decoding for probes (temperature 0), `eval.probe_max_new_tokens` tokens."""
    return SamplingParams(
        temperature=0.0,
        top_p=1.0,
        max_new_tokens=cfg.eval.probe_max_new_tokens,
        repetition_penalty=1.0,
        seed=cfg.eval.seed,
    )


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text):
        try:
            out.append(float(m.group().replace(",", "")))
        except ValueError:
            continue
    return out


def answer_number(reply: str, prompt: str = "") -> float | None:
    """The number a reply gives as its answer (see the `number` check), or None."""
    if "=" in reply:
        after = _numbers(reply.rsplit("=", 1)[1])
        if after:
            return after[0]
    got = _numbers(reply)
    if not got:
        return None
    asked = set(_numbers(prompt))
    return next((x for x in got if x not in asked), got[-1])


def _whole_word(needle: str, text: str, *, case: bool) -> bool:
    flags = 0 if case else re.IGNORECASE
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", text, flags) is not None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The reply as a JSON object (a ``` fence around it is allowed); None when it is not one."""
    t = text.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1).strip()
    try:
        obj = json.loads(t)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def score(check: str, answer: Any, reply: str, prompt: str = "") -> bool:
    """True when `reply` (to `prompt`) passes `check` with `answer`. Pure; the same rules for every model."""
    text = reply.strip()
    answers = answer if isinstance(answer, list) else [answer]
    if check == "number":
        got = answer_number(text, prompt)
        return got is not None and abs(got - float(answer)) < 1e-9
    if check == "contains":
        return any(_whole_word(str(a), text, case=False) for a in answers)
    if check == "contains_exact":
        return any(_whole_word(str(a), text, case=True) for a in answers)
    if check in ("starts_with", "first_token"):
        toks = _TOKEN.findall(text)
        return bool(toks) and toks[0].lower() in {str(a).lower() for a in answers}
    if check == "json_keys":
        obj = parse_json_object(text)
        return obj is not None and all(k in obj for k in answers)
    if check in ("one_line", "line_count"):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return len(lines) == (1 if check == "one_line" else int(answer))
    if check == "exact":
        bare = text.strip().strip("\"'`").rstrip(".!").strip()
        return any(bare == a if a != a.lower() else bare.lower() == a.lower() for a in map(str, answers))
    if check == "max_words":
        return 1 <= len(_TOKEN.findall(text)) <= int(answer)
    if check == "not_contains":
        return bool(text) and not any(_whole_word(str(a), text, case=False) for a in answers)
    if check == "lowercase":
        return any(ch.isalpha() for ch in text) and not any(ch.isupper() for ch in text)
    if check == "ends_with":
        toks = _TOKEN.findall(text)
        return bool(toks) and toks[-1].lower() in {str(a).lower() for a in answers}
    raise ValueError(f"unknown check {check!r}")


def score_probes(probes: list[Probe], replies: list[str]) -> dict[str, Any]:
    """Accuracy overall and by kind, plus each item's verdict and full reply."""
    if len(probes) != len(replies):
        raise ValueError(f"{len(probes)} probes but {len(replies)} replies")
    oks = [score(p.check, p.answer, r, p.prompt) for p, r in zip(probes, replies, strict=True)]
    items: list[dict[str, Any]] = [
        {"id": p.id, "kind": p.kind, "ok": ok, "reply": r}
        for p, ok, r in zip(probes, oks, replies, strict=True)
    ]
    by_kind: dict[str, list[bool]] = {}
    for p, ok in zip(probes, oks, strict=True):
        by_kind.setdefault(p.kind, []).append(ok)
    return {
        "n": len(items),
        "accuracy": round(sum(oks) / len(oks), 4) if oks else 0.0,
        "by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
        "items": items,
    }
