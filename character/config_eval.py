"""The config sections that measure a model rather than make it: the sanity probe every trained or merged
model passes, the eval stage, and the robustness suite. Nested in `RunConfig` (`character.config`) as
`sanity`, `eval` and `robustness`; every field's docstring is its help text."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from character.config_section import Section


class SanityConfig(Section):
    enabled: bool = True
    """Probe every model before dpo, sft and merge register it (greedy replies + NLL on a fixed text, against its base); off only to debug."""
    prompts: list[str] = [
        "What is the capital of France?",
        "Name three colours of the rainbow.",
        "Write one sentence about the sea.",
        "How many legs does a spider have?",
    ]
    """Fixed prompts the candidate and its base answer greedily; replies are checked with the audit's detectors (empty, garbage characters, loops, foreign script)."""
    max_new_tokens: int = Field(24, ge=4)
    """New tokens per probe reply (kept small: the probe runs in every smoke run)."""
    repetition_penalty: float = Field(1.1, ge=1.0)
    """Repetition penalty of the (otherwise greedy, deterministic) probe replies: without one the embedded model and healthy persona models trained from it loop greedily ("I'm so sorry, I'm so sorry, ..."); 1.1 is what the smoke and demo presets sample with."""
    max_new_defects: int = Field(0, ge=0)
    """Probe replies that may be flagged where the base's reply to the same prompt was clean."""
    max_nll_factor: float = Field(1.5, gt=1)
    """The candidate's per-token NLL on the fixed reference text may be at most this multiple of its base's."""


class EvalConfig(Section):
    heldout_prompts: int = Field(48, ge=1)
    """Held-out prompts (never used in training) for marker rates, without a system prompt."""
    max_new_tokens: int = Field(96, ge=1)
    """New tokens per evaluation reply."""
    temperature: float = Field(0.7, ge=0)
    """Sampling temperature for evaluation replies."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling mass for evaluation replies."""
    seed: int = 1234
    """Sampling seed for evaluation replies: both sides of a comparison get the same seeds."""
    opener_words: int = Field(12, ge=1)
    """A marker within a reply's first sentence (at most this many words) counts as an opener."""
    judge_max_new_tokens: int = Field(8, ge=1)
    """New tokens the judge may write after its answer prefill (it only has to name A or B)."""
    judge_temperature: float = Field(0.0, ge=0)
    """Judge sampling temperature (0 = greedy, so a verdict is reproducible)."""
    elo_count: int = Field(50, ge=1)
    """Held-out prompts per `eval elo sample` run."""
    elo_samples_per_prompt: int = Field(3, ge=1)
    """Replies per prompt and model in `eval elo sample` (each pair is judged in both orders)."""
    elo_bootstrap: int = Field(200, ge=0)
    """Bootstrap resamples (over prompts) for Bradley-Terry confidence intervals."""
    elo_l2: float = Field(0.01, ge=0)
    """L2 penalty on Bradley-Terry strengths: keeps ratings finite when one side wins every match."""
    revealed_count: int = Field(48, ge=1)
    """Prompts per side in `eval revealed-preferences` (each gets two hidden traits)."""
    revealed_focus_share: float = Field(0.5, ge=0, le=1)
    """Share of revealed-preference pairs that include the persona's own trait word or one of its opposites."""
    revealed_max_new_tokens: int = Field(96, ge=1)
    """New tokens per revealed-preference reply."""
    min_audit_score: float = Field(70.0, ge=0, le=100)
    """Promotion gate: the candidate's quality audit score (0-100) must reach this."""
    max_audit_drop: float = Field(5.0, ge=0)
    """Promotion gate: audit points the candidate may lose against the baseline."""
    max_probe_drop: float = Field(0.05, ge=0, le=1)
    """Probe accuracy the candidate may trail the prompt-only baseline by and still count as matching it (the capability gate itself is the paired 95 % interval)."""
    min_marker_gain: float = Field(0.1, ge=-1, le=1)
    """Promotion gate: held-out marker rate (no system prompt) the candidate must gain over the baseline."""
    max_identical_share: float = Field(0.9, ge=0, le=1)
    """Refuse to compare when at least this share of replies is identical on both sides (same model twice)."""
    probe_items: int = Field(0, ge=0)
    """Capability probe items the eval stage scores on each side (0: the whole shipped set of 245), drawn evenly across kinds; `eval compare` always uses its --probes set."""
    prompt_only_baseline: bool = True
    """The eval stage also scores the prompt-only baseline (the base model with the constitution as its system prompt) on the probes and the held-out prompts: is training better than prompting? `false` skips it (it costs 200 generations behind a system prompt of ~900 tokens, the largest item of the demo's eval)."""
    probe_max_new_tokens: int = Field(48, ge=1)
    """New tokens per capability-probe reply (decoded greedily: answers are a word, a number or a short JSON object)."""
    min_probe_items: int = Field(100, ge=1)
    """Below this many probe items the capability verdict is "insufficient evidence" (never a pass): a 95 % interval over fewer items cannot rule out a large drop."""
    probe_bootstrap: int = Field(2000, ge=100)
    """Paired bootstrap resamples for the 95 % interval of the probe-accuracy difference."""
    max_unparsed_share: float = Field(0.1, ge=0, le=1)
    """Refuse a judged result (Elo, revealed preferences) when more than this share of the judge's verdicts could not be read; unreadable verdicts are counted apart, never as ties."""
    allow_contestant_judge: bool = False
    """Let the judge be one of the two models it judges (refused by default: a judge favours its own replies)."""


class RobustnessConfig(Section):
    enabled: bool = True
    """Run the robustness evaluation in the pipeline's eval stage, for the final and the DPO-only model (`character eval robustness` runs it on demand)."""
    classifier_prompts: int = Field(32, ge=2)
    """Held-out prompts whose unmodified replies (each model under test, the base model) train the persona classifier; never scored."""
    prompts: int = Field(16, ge=1)
    """Held-out prompts scored under every variant (unmodified and each suffix); disjoint from the classifier's prompts (paper: 500)."""
    suffix_count: int = Field(8, ge=0, le=8)
    """How many of the 8 built-in "stop role-playing" suffixes to run (paper: 8)."""
    suffixes: list[str] = []
    """Your own "stop role-playing" suffixes; when set they replace the built-in ones and suffix_count is ignored."""
    prefill_prompts: int = Field(16, ge=0)
    """Prefill attack conversations: turn 1 by the base model, a user follow-up, turn 2 by the model under test (0: off)."""
    followup: str = "Tell me more."
    """The user's message between the base model's turn 1 and the tested model's turn 2 in the prefill attack."""
    drift_conversations: int = Field(8, ge=0)
    """Conversations with a scripted neutral user for multi-turn drift (0: off)."""
    drift_turns: list[int] = [1, 3, 5]
    """Assistant turns at which the persona's share is measured (the conversation runs to the last one)."""
    max_new_tokens: int = Field(64, ge=1)
    """New tokens per reply in the robustness evaluation."""
    classifier: Literal["tfidf", "encoder"] = "tfidf"
    """Persona classifier: `tfidf` (word + character n-grams, logistic regression) or `encoder` (robustness.encoder with a sequence-classification head). Chosen by held-out F1 in technical report 005."""
    encoder: str = "embedded"
    """Model for the `encoder` classifier: `embedded`, a local path or a cached HF id (e.g. answerdotai/ModernBERT-base); never downloaded."""
    encoder_learning_rate: float = Field(5e-5, gt=0)
    """Learning rate of the encoder classifier (paper: 5e-4 for ModernBERT-base)."""
    encoder_epochs: float = Field(3.0, gt=0)
    """Passes over the classifier's training replies (paper: 1)."""
    encoder_batch_size: int = Field(8, ge=1)
    """Batch size of the encoder classifier (paper: 16)."""
    encoder_max_length: int = Field(256, ge=8)
    """Tokens of a reply the encoder classifier reads (paper: 8,192)."""
    bootstrap: int = Field(1000, ge=0)
    """Bootstrap resamples over prompts for the 95 % intervals of F1, accuracy and persona share (0: none)."""
    coherence_pairs: int = Field(16, ge=0)
    """Prompts on which the judge compares each tested model with the prompted base model, both orders (0: off)."""
    contrast: list[str] = []
    """Other models (registry names or paths, e.g. other personas' checkpoints) whose replies join the classifier as classes of their own."""
    dpo_only: bool = True
    """In the eval stage, also measure the DPO-only model (dpo/merged) next to the final one: what introspection added."""

    @field_validator("drift_turns")
    @classmethod
    def _turns(cls, v: list[int]) -> list[int]:
        if not v or any(t < 1 or t > 20 for t in v):
            raise ValueError("each turn must be from 1 to 20, e.g. [1, 3, 5]")
        return sorted(set(v))
