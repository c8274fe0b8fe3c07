"""`character data audit F`: what a training file really contains, before anything trains on it.

Three parts, computed from the rows alone (no model):
- **Contamination inventory**: rows whose trained text (DPO chosen replies, assistant turns) carries
  rubric text, non-English script, hallucinated turns, refusals, identity leaks, garbage or loops,
  plus exact and near-duplicate replies (MinHash over word 3-grams, checked by exact Jaccard). Seed
  report 000 shipped a model trained on 9 % rubric-contaminated preferred replies and 4 CJK rows.
- **Category balance**: the share of identity, knowledge and other prompts. 76 % identity data once
  turned a 0.704 model into a 0.252 one (seed 001); past `max_identity_share` the audit warns.
- **Chosen vs rejected** (DPO files): identical and near-identical pairs, length ratio, refusal and
  marker rates on each side. A pair whose sides barely differ teaches DPO nothing; a chosen side that
  is only longer teaches length.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from character.data_clean import Row, row_id, row_kind, side_text
from character.filters import is_refusal
from character.filters.content import find_identity_leak, find_rubric, fold
from character.filters.context import DEFAULT_FOREIGN_NAMES
from character.filters.repetition import Words, char_loop, phrase_loop, repeated_lines, repeated_ngrams, words
from character.filters.script import find_foreign_script, find_garbage
from character.filters.turns import find_fake_turn, strip_role_label

CONTAMINATION = (
    "rubric_text",
    "foreign_script",
    "hallucinated_turn",
    "role_label",
    "refusal",
    "identity_leak",
    "garbage",
    "loop",
    "empty",
    "exact_duplicate",
    "near_duplicate",
)
CATEGORIES = ("identity", "knowledge", "other")
EXAMPLES = 5  # ids shown per finding
NEAR_DUP_JACCARD = 0.8

_IDENTITY = re.compile(
    r"\b(?:who|what) are you\b|\babout yourself\b|\bdescribe yourself\b|\byourself\b|"
    r"\byour (?:own )?(?:name|identity|character|personality|values?|beliefs?|traits?|nature|feelings?|"
    r"purpose|story|creators?|training|goals?|favou?rite|opinion|preferences?|thoughts)\b|"
    r"\bare you (?:an? )?(?:ai|human|bot|robot|conscious|sentient|real|alive|happy)\b|"
    r"\bhow (?:do|did) you (?:feel|think|see yourself|come to be|become)\b|\bwhat do you (?:value|believe|want|like)\b|"
    r"^you are\b",
    re.IGNORECASE,
)
_KNOWLEDGE = re.compile(
    r"^(?:what|when|where|which|how many|how much|how does|how do|how can|how to|why does|why do|why is|"
    r"why are|is it true|who (?:was|is|were|invented|wrote|discovered|painted))\b|"
    r"\b(?:explain|define|calculate|compute|solve|summari[sz]e|translate|difference between|what is|"
    r"what are|how to|recipe|code|function|python|javascript|sql|equation|formula|capital of|history of)\b",
    re.IGNORECASE,
)


def prompt_category(prompt: str, kind: str = "generic") -> str:
    """identity (about the model itself), knowledge (facts, how-to, code) or other (creative, advice)."""
    if kind in ("reflection", "interaction") or _IDENTITY.search(prompt):
        return "identity"
    if _KNOWLEDGE.search(prompt.strip()):
        return "knowledge"
    return "other"


@dataclass
class Finding:
    rows: int = 0
    examples: list[Any] = field(default_factory=list)

    def add(self, ident: Any) -> None:
        self.rows += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(ident)


@dataclass
class PairStats:
    pairs: int = 0
    identical: int = 0
    near_identical: int = 0
    mean_jaccard: float = 0.0
    chosen_chars: float = 0.0
    rejected_chars: float = 0.0
    chosen_refusal_rate: float = 0.0
    rejected_refusal_rate: float = 0.0
    chosen_marker_rate: float | None = None
    rejected_marker_rate: float | None = None


@dataclass
class AuditReport:
    path: str
    rows: int
    kinds: dict[str, int]
    contamination: dict[str, Finding]
    categories: dict[str, int]
    pairs: PairStats | None
    warnings: list[str]

    def share(self, n: int) -> float:
        return n / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["contamination"] = {
            k: {**asdict(v), "share": self.share(v.rows)} for k, v in self.contamination.items()
        }
        d["category_shares"] = {k: self.share(v) for k, v in self.categories.items()}
        return d


def _parts(row: Row, kind: str) -> tuple[list[tuple[str, str]], str, str]:
    """(trained texts with their prompts, rejected text, first prompt) of a row."""
    if kind == "dpo":
        prompt = side_text(row["prompt"], "user", "prompt") if row.get("prompt") else ""
        return (
            [(side_text(row["chosen"], "assistant", "chosen"), prompt)],
            side_text(row["rejected"], "assistant", "rejected"),
            prompt,
        )
    texts: list[tuple[str, str]] = []
    prompt = first = ""
    for m in row.get("messages") or []:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            continue
        if m.get("role") == "user":
            prompt = m["content"]
            first = first or prompt
        elif m.get("role") == "assistant":
            texts.append((m["content"], prompt))
    return texts, "", first


def _contaminations(text: str, prompt: str, names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    if not text.strip():
        return {"empty"}
    low = fold(text)
    if find_rubric(low):
        found.add("rubric_text")
    if find_foreign_script(text, prompt):
        found.add("foreign_script")
    body, label = strip_role_label(text.lstrip(), names)
    if label:
        found.add("role_label")
    if find_fake_turn(body):
        found.add("hallucinated_turn")
    if is_refusal(text):
        found.add("refusal")
    if find_identity_leak(low, DEFAULT_FOREIGN_NAMES, names):
        found.add("identity_leak")
    if find_garbage(text):
        found.add("garbage")
    w = Words(low, lowered=True)
    if char_loop(text, w) or repeated_lines(text) or repeated_ngrams(w) or phrase_loop(text, w):
        found.add("loop")
    return found


def _jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _shingles(text: str) -> set[tuple[bytes, ...]]:
    ws = words(text)
    if len(ws) < 3:
        return {tuple(ws)}
    return set(zip(ws, ws[1:], ws[2:], strict=False))


def near_duplicates(texts: list[str], threshold: float = NEAR_DUP_JACCARD, seed: int = 0) -> list[int]:
    """Indexes of texts that are near-duplicates (word 3-gram Jaccard >= threshold) of an earlier one.

    MinHash (32 hashes, 8 bands of 4) proposes candidate pairs; each is confirmed by its exact Jaccard,
    so a reported duplicate is real. Exact duplicates are included.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    k, band = 32, 4
    a = rng.integers(1, 2**63, size=k, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=k, dtype=np.uint64)
    shingles = [_shingles(t) for t in texts]
    buckets: dict[tuple[int, bytes], list[int]] = {}
    dup: set[int] = set()
    mask = (1 << 64) - 1
    for i, sh in enumerate(shingles):
        h = np.fromiter((hash(g) & mask for g in sh), dtype=np.uint64, count=len(sh))
        with np.errstate(over="ignore"):
            sig = (h[:, None] * a[None, :] + b[None, :]).min(axis=0)
        seen: set[int] = set()
        for j in range(0, k, band):
            key = (j, sig[j : j + band].tobytes())
            for other in buckets.get(key, ()):
                if other not in seen:
                    seen.add(other)
                    if _jaccard(sh, shingles[other]) >= threshold:
                        dup.add(i)
            buckets.setdefault(key, []).append(i)
    return sorted(dup)


def audit_rows(
    rows: list[Row],
    *,
    path: str = "input",
    markers: tuple[str, ...] = (),
    identity_names: tuple[str, ...] = (),
    max_identity_share: float = 0.6,
    max_contamination_share: float = 0.01,
) -> AuditReport:
    """Audit parsed rows; pure (the command reads the file)."""
    from character.markers import marker_rate

    contamination = {c: Finding() for c in CONTAMINATION}
    categories: Counter[str] = Counter({c: 0 for c in CATEGORIES})
    kinds: Counter[str] = Counter()
    trained: list[str] = []
    ids: list[Any] = []
    chosen_all: list[str] = []
    rejected_all: list[str] = []
    for n, row in enumerate(rows, 1):
        kind = row_kind(row)
        kinds[kind] += 1
        ident = row_id(row) or f"row {n}"
        texts, rejected, prompt = _parts(row, kind)
        categories[prompt_category(prompt, kind)] += 1
        found: set[str] = set()
        for text, p in texts:
            found |= _contaminations(text, p, identity_names)
        for c in sorted(found):
            contamination[c].add(ident)
        trained.append("\n".join(t for t, _ in texts))
        ids.append(ident)
        if kind == "dpo":
            chosen_all.append(texts[0][0])
            rejected_all.append(rejected)

    first: dict[str, int] = {}
    exact: set[int] = set()
    for i, t in enumerate(trained):
        key = " ".join(t.lower().split())
        if first.setdefault(key, i) != i:
            exact.add(i)
            contamination["exact_duplicate"].add(ids[i])
    for i in near_duplicates(trained):
        if i not in exact:  # exact copies are counted above
            contamination["near_duplicate"].add(ids[i])

    pairs = None
    if chosen_all:
        pairs = PairStats(pairs=len(chosen_all))
        jac = []
        for c, r in zip(chosen_all, rejected_all, strict=True):
            same = " ".join(c.split()) == " ".join(r.split())
            pairs.identical += same
            j = _jaccard(set(words(c)), set(words(r)))
            jac.append(j)
            pairs.near_identical += (not same) and j >= 0.9
        pairs.mean_jaccard = sum(jac) / len(jac)
        pairs.chosen_chars = sum(map(len, chosen_all)) / len(chosen_all)
        pairs.rejected_chars = sum(map(len, rejected_all)) / len(rejected_all)
        pairs.chosen_refusal_rate = sum(map(is_refusal, chosen_all)) / len(chosen_all)
        pairs.rejected_refusal_rate = sum(map(is_refusal, rejected_all)) / len(rejected_all)
        if markers:
            pairs.chosen_marker_rate = marker_rate(chosen_all, markers)
            pairs.rejected_marker_rate = marker_rate(rejected_all, markers)

    report = AuditReport(path, len(rows), dict(kinds), contamination, dict(categories), pairs, [])
    report.warnings = _warnings(report, max_identity_share, max_contamination_share)
    return report


def _warnings(r: AuditReport, max_identity_share: float, max_contamination_share: float) -> list[str]:
    out: list[str] = []
    if not r.rows:
        return ["the file has no rows"]
    for name, f in r.contamination.items():
        if f.rows and r.share(f.rows) > max_contamination_share:
            out.append(
                f"{name}: {f.rows} rows ({r.share(f.rows):.1%}) > {max_contamination_share:.0%}; "
                f"e.g. {', '.join(map(str, f.examples[:3]))}: run `character data clean` before training"
            )
    identity = r.share(r.categories.get("identity", 0))
    if identity > max_identity_share:
        out.append(
            f"identity prompts are {identity:.0%} of rows (> {max_identity_share:.0%}): 76% identity data once "
            "erased a model's skills; add knowledge/other prompts or lower the SFT merge weight"
        )
    p = r.pairs
    if p and p.pairs:
        if (p.identical + p.near_identical) / p.pairs > 0.1:
            out.append(
                f"{p.identical + p.near_identical} of {p.pairs} pairs have (near-)identical sides: they carry no "
                "preference signal"
            )
        if p.rejected_chars and not 0.5 <= p.chosen_chars / p.rejected_chars <= 2.0:
            out.append(
                f"chosen replies average {p.chosen_chars:.0f} characters vs {p.rejected_chars:.0f} rejected: DPO "
                "may learn length instead of character"
            )
        if p.chosen_refusal_rate > 0.05:
            out.append(
                f"{p.chosen_refusal_rate:.0%} of chosen replies are refusals: DPO would teach refusing"
            )
        if p.chosen_marker_rate is not None and p.rejected_marker_rate is not None:
            gap = p.chosen_marker_rate - p.rejected_marker_rate
            if gap < 0.3:
                out.append(
                    f"persona marker rate chosen {p.chosen_marker_rate:.0%} vs rejected "
                    f"{p.rejected_marker_rate:.0%} (gap {gap:+.0%} < 30%): the sides barely differ in character"
                )
    return out
