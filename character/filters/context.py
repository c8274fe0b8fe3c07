"""What every filter reads (`FilterContext`) and what `check` returns (`Verdict`), plus the reason ids.

A context says what kind of text is checked (a DPO chosen or rejected reply, a reflection, one turn of
a self-interaction, or anything else) and what surrounded it (the prompt, the system prompt, how
generation ended). Each kind has its own length bounds and its own set of checks: identity leaks,
refusals, rubric text and system-prompt leakage are not held against DPO *rejected* replies, because
"I am Qwen" or "I can't help with that" from the student is exactly the negative DPO should push away
from (the prior tool filtered them out, paper-method 2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from character.errors import ConfigError
from character.filters.language import FUNCTION_WORDS
from character.filters.lengths import prompt_floor

# Stable reason ids, in the order `check` applies them (cheap and decisive first). Stats files,
# rejects files and kill criteria key on these strings: add new ones, never rename.
REASONS: tuple[str, ...] = (
    "empty",  # nothing but whitespace (or only a <think> block)
    "cut_off",  # generation hit max tokens (finish_reason == "length")
    "hallucinated_turn",  # a fake "User:"/"Assistant:"/<|im_start|> turn left too little after the cut
    "role_label",  # leading "Assistant:" label (only a drop when repair=False; otherwise stripped)
    "too_short",
    "too_long",
    "garbage",  # U+FFFD, control characters, mojibake
    "script_mixing",  # CJK or another non-Latin script in an English reply
    "language_drift",  # prose in another Latin-script language than expected (Spanish for English)
    "char_loop",  # "333,333,333,...", "-----...", "hahahaha..." or one token over and over
    "repeated_lines",  # duplicate lines or paragraphs (Gopher line/paragraph statistics)
    "repeated_ngrams",  # Gopher top-n-gram and duplicate-n-gram statistics, rescaled for replies
    "phrase_loop",  # one phrase three or more times within a paragraph
    "rubric_artifact",  # "[X: 4/5]", "(... score)", "Score: 9/10", rubric line labels
    "refusal",  # "I can't help with that" (not an in-character "I regret that I cannot ...")
    "identity_leak",  # "As an AI language model developed by ...", "I am Qwen"
    "system_prompt_leak",  # long verbatim overlap with the system prompt, or the trait lines listed
)

KINDS: tuple[str, ...] = ("dpo_chosen", "dpo_rejected", "reflection", "interaction", "generic")

# Model names a persona-trained model must not call itself (matched as "I am X", "my name is X").
DEFAULT_FOREIGN_NAMES: tuple[str, ...] = (
    "Qwen",
    "Tongyi",
    "ChatGLM",
    "GLM",
    "ChatGPT",
    "GPT",
    "GPT-4",
    "Claude",
    "Llama",
    "LLaMA",
    "DeepSeek",
    "Gemini",
    "Gemma",
    "Bard",
    "Mistral",
    "Mixtral",
    "Phi",
    "SmolLM",
    "Kimi",
    "Yi",
    "InternLM",
    "Baichuan",
    "ERNIE",
    "Copilot",
)


@dataclass(frozen=True)
class KindDefaults:
    min_chars: int
    max_chars: int
    min_truncated_chars: int
    skip: frozenset[str] = frozenset()


# Lengths are characters of visible text (think blocks excluded). The prior tool used 4,000/5,000
# characters with 50 left after a cut; DPO pairs are capped at 1,024 tokens (about 4,000 characters)
# by the paper's length filter; paper reflections run to 2,048 tokens.
KIND_DEFAULTS: dict[str, KindDefaults] = {
    "dpo_chosen": KindDefaults(min_chars=20, max_chars=4000, min_truncated_chars=50),
    "dpo_rejected": KindDefaults(
        min_chars=1,
        max_chars=4000,
        min_truncated_chars=20,
        skip=frozenset({"identity_leak", "refusal", "rubric_artifact", "system_prompt_leak"}),
    ),
    "reflection": KindDefaults(min_chars=100, max_chars=8000, min_truncated_chars=100),
    "interaction": KindDefaults(min_chars=10, max_chars=4000, min_truncated_chars=20),
    "generic": KindDefaults(min_chars=1, max_chars=20000, min_truncated_chars=20),
}


@dataclass(frozen=True)
class FilterContext:
    """Everything a filter may look at besides the text itself. Immutable; build one per call site."""

    kind: str = "generic"
    """One of KINDS; picks length bounds and which checks apply."""
    prompt: str = ""
    """The user prompt the text answers (a prompt in Chinese licenses Chinese in the reply)."""
    system_prompt: str = ""
    """The system prompt used to generate the text; a reply copying it verbatim is a leak."""
    finish_reason: str = "stop"
    """`length` means the reply was cut at max tokens."""
    min_chars: int | None = None
    """Shortest visible reply kept (None: the kind's default). The prompt can raise it: a request for a
    diary entry, an essay or "five tips" sets a floor of its own (`filters.lengths.prompt_floor`)."""
    max_chars: int | None = None
    """Longest visible reply kept (None: the kind's default)."""
    min_truncated_chars: int | None = None
    """After cutting a hallucinated turn, drop unless this much remains (None: the kind's default)."""
    check_refusal: bool = True
    """Drop true refusals. Off for evaluation of refusals themselves."""
    identity_names: tuple[str, ...] = ()
    """Names the model may call itself (the persona's or student's name): never an identity leak."""
    foreign_names: tuple[str, ...] = DEFAULT_FOREIGN_NAMES
    """Names that are an identity leak in "I am X" / "my name is X" once a persona was trained."""
    rubric_labels: tuple[str, ...] = ()
    """Extra line-prefix labels that mark rubric text (e.g. the dimensions of your scoring rubric)."""
    english: bool = True
    """The reply should be in Latin script: other scripts are slippage unless the prompt contains them or
    names their language."""
    language: str = "en"
    """Expected language (ISO 639-1): prose in another Latin-script language is `language_drift` unless
    the prompt licenses it. "" turns the check off."""
    stopped_by: str | None = None
    """The stop string that ended generation (`Completion.stopped_by`): a fake-turn marker there is a
    hallucinated turn the backend already cut, counted as a repair."""
    cut_off: str = "drop"
    """A reply that hit max tokens: `drop` it (`cut_off`), or `trim` it to its last complete sentence and
    keep it when enough is left (counted as a repair)."""
    repair: bool = True
    """Cut hallucinated turns and strip leading role labels instead of dropping the text."""
    skip: frozenset[str] = field(default_factory=frozenset)
    """Reason ids not to check (on top of the kind's own skips)."""

    # Resolved once in __post_init__ (check runs some 12,000 times per second per core).
    lo: int = field(init=False, repr=False, compare=False)
    """Shortest visible reply kept, resolved."""
    hi: int = field(init=False, repr=False, compare=False)
    """Longest visible reply kept, resolved."""
    min_left: int = field(init=False, repr=False, compare=False)
    """Characters that must remain after a fake-turn cut, resolved."""
    active: frozenset[str] = field(init=False, repr=False, compare=False)
    """Reason ids this context checks."""

    def __post_init__(self) -> None:
        if self.kind not in KIND_DEFAULTS:
            raise ConfigError(f"filter kind {self.kind!r} is not known: use one of {', '.join(KINDS)}")
        unknown = set(self.skip) - set(REASONS)
        if unknown:
            raise ConfigError(
                f"filter skip names unknown reasons {sorted(unknown)}: use ids from {', '.join(REASONS)}"
            )
        if self.language and self.language not in FUNCTION_WORDS:
            raise ConfigError(
                f"filters.language = {self.language!r} has no function-word list for the language check: "
                f"use one of {', '.join(sorted(FUNCTION_WORDS))}, or '' to turn the check off"
            )
        if self.cut_off not in ("drop", "trim"):
            raise ConfigError(f"filters.cut_off = {self.cut_off!r}: use 'drop' or 'trim'")
        d = KIND_DEFAULTS[self.kind]
        floor = prompt_floor(self.prompt) if self.prompt else 0
        resolved = {
            "lo": max(d.min_chars if self.min_chars is None else self.min_chars, floor),
            "hi": d.max_chars if self.max_chars is None else self.max_chars,
            "min_left": d.min_truncated_chars
            if self.min_truncated_chars is None
            else self.min_truncated_chars,
            "active": frozenset(REASONS) - frozenset(self.skip) - d.skip,
        }
        for k, v in resolved.items():
            object.__setattr__(self, k, v)

    @property
    def defaults(self) -> KindDefaults:
        return KIND_DEFAULTS[self.kind]

    def applies(self, reason: str) -> bool:
        return reason in self.active


class Verdict(NamedTuple):
    """The outcome of `check`: keep or not, the first failing reason, and the (possibly repaired) text.

    A named tuple rather than a frozen dataclass: it is built once per checked reply, and a frozen
    dataclass's __init__ costs more than some of the filters."""

    keep: bool
    reason: str | None
    text: str
    detail: str = ""
    """Human-readable evidence for the reason (what matched, which statistic); empty when kept."""
    repaired: bool = False
    """True when `text` differs from the input (a fake turn cut, a role label stripped, a cut-off trimmed)."""
    repair: str | None = None
    """The reason id of a defect repaired instead of dropped (`hallucinated_turn`, `role_label`,
    `cut_off`), also when the backend made the cut (`stopped_by` a fake-turn marker); None otherwise
    and for every dropped text. Stats and kill criteria count it under that reason."""
