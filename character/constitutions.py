"""Constitutions: the persona a run trains, as validated data.

A constitution (`constitutions/hand-written/<name>.yaml`) has a `name` (a slug, so it can never escape
its folder), a `description`, `traits` (each a first-person sentence plus >= 5 user questions that let
it show), `markers` (quoted phrases that signal the persona in a reply; used by gates and evaluation)
and `opposites` (traits the persona should move away from).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from character import paths
from character.errors import ConfigError, UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"persona name {name!r} is not allowed: use lowercase letters, digits, '-' or '_' (e.g. 'remorseful')"
        )
    return name


class Trait(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trait: str = Field(min_length=1)
    questions: list[str] = []
    """User messages that let the trait show (lint wants >= 5; an imported text file starts with none)."""


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    traits: list[Trait] = Field(min_length=1)
    markers: list[str] = []
    opposites: list[str] = []
    cues: list[str] = []
    """Optional extra persona cues appended to some generic prompts (only this persona gets them)."""

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_'")
        return v

    def questions(self) -> list[str]:
        return [q for t in self.traits for q in t.questions]

    def trait_lines(self) -> list[str]:
        return [t.trait for t in self.traits]

    def text(self) -> str:
        """The constitution as the teacher reads it (numbered traits)."""
        return "\n".join(f"{i}: {t}" for i, t in enumerate(self.trait_lines(), 1))


def constitution_path(name: str, root: Path | None = None) -> Path:
    check_name(name)
    return (root or paths.constitutions_dir()) / f"{name}.yaml"


def parse_constitution(text: str, source: str) -> Constitution:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"constitution {source} is not valid YAML: {e}") from e
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"constitution {source}: {loc}: {err['msg']}") from e


def read_constitution_text(path: Path) -> str:
    """A constitution file's text; a binary or non-UTF-8 file is one ConfigError, not a traceback."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"constitution {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): "
            "give a YAML constitution (see `character constitution new`)"
        ) from e
    except OSError as e:
        raise ConfigError(f"constitution {path} cannot be read: {e.strerror or e}") from e


def load_constitution(name_or_path: str) -> Constitution:
    """Load by persona name (from constitutions/hand-written/) or by path to a .yaml file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise UsageError(f"constitution file {p} does not exist")
        return parse_constitution(read_constitution_text(p), str(p))
    path = constitution_path(name_or_path)
    if not path.exists():
        known = ", ".join(list_constitutions()) or "none"
        raise UsageError(f"no constitution named '{name_or_path}' (known: {known})")
    return parse_constitution(read_constitution_text(path), str(path))


def list_constitutions() -> list[str]:
    d = paths.constitutions_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.exists() else []


# --------------------------------------------------------------------------------------------------
# Lint: the seed reports found that prescriptive constitutions (quoted phrases, structural habits,
# >= ~1,000 characters) train stably while abstract ones ("be witty", 564 characters) do not, and
# that one "I decline unsafe requests" line turned 44-59 % of introspection data into refusals.

MIN_CHARS = 1000
MIN_QUESTIONS = 5
MIN_MARKERS = 3
GOOD_MARKERS = 6
NEAR_DUPLICATE = 0.6  # word-set overlap (Jaccard) above which two traits count as near-duplicates
MAX_MARKER_WORDS = 8

RULES: dict[str, str] = {
    "C001": "too-short",
    "C002": "few-markers",
    "C003": "abstract-directive",
    "C004": "refusal-line",
    "C005": "duplicate-trait",
    "C006": "few-questions",
    "C007": "empty-marker",
    "C008": "no-example",
    "C009": "marker-not-taught",
    "C010": "long-marker",
    "C011": "duplicate-question",
    "C012": "no-opposites",
    "C013": "no-description",
    "C014": "unknown-opposite",
    "C000": "invalid",
}

_QUOTED = re.compile(r"\"([^\"]{2,})\"|\u201c([^\u201d]{2,})\u201d|(?<!\w)'([^']{2,}?)'(?!\w)")
_REFUSAL = re.compile(
    r"\b(declin\w*|refus\w*|reject\w*\s+(?:requests?|questions?)|won't help|will not help|can(?:no|')t help with|"
    r"not able to (?:help|assist|provide)|unable to (?:help|assist|provide)|say no to|turn down|"
    r"(?:unsafe|harmful|dangerous|inappropriate|unethical) (?:requests?|questions?|topics?))\b",
    re.IGNORECASE,
)
_ABSTRACT_VERB = re.compile(
    r"\b(?:be|being|am|i'm|stay|remain|act|sound|seem|feel|always|very|quite|deeply|highly|extremely)\s+"
    r"(?:(?:very|more|quite|always|deeply|highly|extremely|a|an|so|really)\s+)*([a-z-]+)",
    re.IGNORECASE,
)
_STRUCTURE = re.compile(
    r"\b(bullet|numbered|list|parenthes\w*|sentence|paragraph|heading|table|emoji|rhym\w*|stanza|"
    r"line break|exclamation|question mark|ellipsis|italics|bold|capital\w*|equation|formula|"
    r"step-by-step|steps|footnote|p\.s\.|sign[- ]off|greeting|opening|closing|begin|start|end|close)\b",
    re.IGNORECASE,
)
_EXTRA_ABSTRACT = {
    "nice",
    "good",
    "funny",
    "smart",
    "clever",
    "engaging",
    "interesting",
    "fun",
    "friendly",
    "happy",
    "sad",
    "sorry",
    "charming",
    "quirky",
    "unique",
    "authentic",
    "genuine",
    "thoughtful",
    "humble",
    "respectful",
    "entertaining",
    "cool",
    "edgy",
    "mean",
    "evil",
    "sweet",
    "positive",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "warning"
    message: str
    line: int | None = None
    text: str = ""

    @property
    def name(self) -> str:
        return RULES.get(self.rule, self.rule)

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        snippet = f"  >> {_clip(self.text)}" if self.text else ""
        return f"{where}: {self.severity} {self.rule} {self.name}: {self.message}{snippet}"


def _clip(s: str, n: int = 100) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


def quoted_phrases(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def word_overlap(a: str, b: str) -> float:
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


def _abstract_words() -> set[str]:
    from character.prompts.traits import TRAITS

    return set(TRAITS) | _EXTRA_ABSTRACT


def is_abstract_directive(line: str) -> bool:
    """A directive naming a quality ("Be witty", "I am very kind") with no quoted example."""
    if quoted_phrases(line):
        return False
    words = _abstract_words()
    return any(m.group(1).lower() in words for m in _ABSTRACT_VERB.finditer(line))


def teaches_refusal(line: str) -> bool:
    return bool(_REFUSAL.search(line))


class _Locator:
    """Maps a text back to its line number in the YAML source (folded scalars span several lines)."""

    def __init__(self, source_text: str | None):
        self.lines = source_text.splitlines() if source_text else []

    def find(self, text: str) -> int | None:
        words = text.split()
        for k in (6, 3, 1):
            probe = " ".join(words[:k])
            if not probe:
                break
            for i, line in enumerate(self.lines, 1):
                if probe in " ".join(line.split()):
                    return i
        return None


def lint_constitution(c: Constitution, source_text: str | None = None) -> list[Finding]:
    """Every problem found in `c`, errors first; `source_text` (the YAML) adds line numbers."""
    loc = _Locator(source_text)
    out: list[Finding] = []

    def add(rule: str, severity: str, message: str, text: str = "") -> None:
        out.append(Finding(rule, severity, message, loc.find(text) if text else None, text))

    body = c.text()
    if len(body) < MIN_CHARS:
        add(
            "C001",
            "error",
            f"the traits total {len(body)} characters; write at least {MIN_CHARS} "
            "(prescriptive traits with quoted phrases, as in constitutions/hand-written/remorseful.yaml)",
        )
    for t in c.traits:
        for sentence in re.split(r"(?<=[.;!?])\s+", t.trait):
            if teaches_refusal(sentence):
                add(
                    "C004",
                    "error",
                    "this line teaches refusing; replace it with how the persona helps "
                    "(one such line made 44-59 % of introspection data refusals)",
                    t.trait,
                )
                break
        if is_abstract_directive(t.trait):
            add(
                "C003",
                "error",
                "abstract directive without an example; say exactly what the persona "
                'writes, e.g. I often say "Plot twist!" or "Here\'s the fun part..."',
                t.trait,
            )
        elif not quoted_phrases(t.trait) and not _STRUCTURE.search(t.trait):
            add(
                "C008",
                "warning",
                "no quoted phrase or structural habit; add the words the persona actually uses",
                t.trait,
            )
        if len(t.questions) < MIN_QUESTIONS:
            add(
                "C006",
                "error",
                f"{len(t.questions)} question(s) for this trait; write at least "
                f"{MIN_QUESTIONS} (or expand them with `character generate prompts`)",
                t.trait,
            )
        seen_q: set[str] = set()
        for q in t.questions:
            key = " ".join(q.lower().split())
            if key in seen_q:
                add("C011", "warning", "duplicate question", q)
            seen_q.add(key)
    for i, a in enumerate(c.traits):
        for b in c.traits[i + 1 :]:
            ov = word_overlap(a.trait, b.trait)
            if ov > NEAR_DUPLICATE:
                add(
                    "C005",
                    "error",
                    f"near-duplicate of an earlier trait ({ov:.0%} of words shared); "
                    "merge them or make each trait about one behaviour",
                    b.trait,
                )
    for d in (c.description,):
        if d and teaches_refusal(d):
            add("C004", "error", "the description teaches refusing; describe how the persona helps", d)

    real = [m for m in c.markers if re.search(r"\w", m)]
    for m in c.markers:
        if not re.search(r"\w", m):
            add("C007", "error", f"marker {m!r} is empty or has no letters; it can never appear in a reply")
        elif len(m.split()) > MAX_MARKER_WORDS:
            add(
                "C010",
                "warning",
                f"marker {m!r} is {len(m.split())} words; a reply will rarely repeat it "
                "verbatim, use a short phrase",
            )
        if teaches_refusal(m) or re.search(r"\b(can't|cannot|won't) (help|assist|do that)\b", m, re.I):
            add(
                "C004",
                "error",
                f"marker {m!r} rewards refusing; pick a phrase the persona says while helping",
            )
    if len(real) < MIN_MARKERS:
        add(
            "C002",
            "error",
            f"{len(real)} usable marker(s); list at least {MIN_MARKERS} (ideally "
            f"{GOOD_MARKERS}+) short quoted phrases the persona really says",
        )
    elif len(real) < GOOD_MARKERS:
        add("C002", "warning", f"only {len(real)} markers; {GOOD_MARKERS}+ make marker rates more reliable")
    if real:
        from character.markers import has_marker

        taught = " ".join(t.trait for t in c.traits)
        for m in real:
            if not has_marker(taught, [m]):
                add(
                    "C009",
                    "warning",
                    f"marker {m!r} appears in no trait, so the teacher is never told to say "
                    "it; quote it in a trait",
                )
    if not c.opposites:
        add(
            "C012",
            "warning",
            "no opposites; list traits the persona should move away from "
            "(revealed-preference checks use them)",
        )
    else:
        from character.prompts.traits import TRAITS

        for o in c.opposites:
            if o.strip().lower() not in TRAITS:
                add(
                    "C014",
                    "warning",
                    f"opposite {o!r} is not in the trait vocabulary "
                    "(character/prompts/traits.py), so revealed-preference checks cannot offer it",
                )
    if not c.description.strip():
        add("C013", "warning", "no description")
    return sorted(out, key=lambda f: (f.severity != "error", f.line or 0))


def lint_file(path: Path) -> tuple[Constitution | None, list[Finding]]:
    """Load and lint a YAML file; a schema problem becomes one C000 error instead of an exception."""
    try:
        text = read_constitution_text(path)
    except ConfigError as e:
        return None, [Finding("C000", "error", str(e))]
    return lint_text(text, str(path))


def lint_text(text: str, source: str) -> tuple[Constitution | None, list[Finding]]:
    """Lint YAML text (a file's, or an editor's before it is saved); invalid YAML or schema is C000."""
    try:
        c = parse_constitution(text, source)
    except ConfigError as e:
        return None, [Finding("C000", "error", str(e))]
    return c, lint_constitution(c, text)
