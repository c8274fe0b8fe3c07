"""SFT examples from introspection rows: token ids plus labels that train every assistant turn only.

In: `introspection.jsonl` rows `{"id", "kind", "variant", "messages"}` (reflections: user + assistant,
no system message; interactions: stored system prompt, then alternating turns ending with the
assistant). Out: `SFTExample(input_ids, labels)` where `labels` is -100 everywhere except the tokens
of each assistant turn (its content and the end-of-turn token), ready for TRL's SFTTrainer as a
pre-tokenised dataset.

Why our own masking: TRL's `assistant_only_loss` needs `{% generation %}` markers that SmolLM2's
template lacks (it raises), and splitting a 10-turn conversation into 10 prompt/completion rows
multiplies the compute per conversation tenfold. Instead the whole conversation is rendered once by
the one chat renderer, and each assistant turn's character span is found by rendering its prefix
(`messages[:i]` + generation prompt) and the conversation up to and including it. Tokens are
assigned to spans by their character offsets, so a BPE merge across a boundary can never shift a
label. Both earlier bugs are impossible by construction: every assistant turn is a target (the
reference code trained only the last message) and no `User:` text is ever inside a target (the prior
orchestrator trained a whole transcript as one reply).

Rows longer than `max_length` are cut after the last assistant turn that fits (whole turns only,
counted as `truncated`) or dropped when not even the first one fits (counted as `too_long`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.chat import render
from character.errors import DataError
from character.records import Message, read_jsonl, validate_messages
from character.training.split import prompt_text, split_sft

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class SFTExample:
    id: str
    kind: str
    input_ids: list[int]
    labels: list[int]
    turns: int  # assistant turns trained in this example
    prompt: str = ""  # folded first user message: the held-out split keeps a prompt on one side

    @property
    def target_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class BuildStats:
    rows_in: int = 0
    kept: int = 0
    truncated: int = 0
    turns_cut: int = 0
    dropped: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    tokens: int = 0
    target_tokens: int = 0
    max_tokens_seen: int = 0

    def as_counts(self) -> dict[str, int]:
        return {
            "rows_in": self.rows_in,
            "kept": self.kept,
            "truncated": self.truncated,
            "assistant_turns_cut": self.turns_cut,
            "tokens": self.tokens,
            "target_tokens": self.target_tokens,
            "longest_row_tokens": self.max_tokens_seen,
            **{f"kept_{k}": v for k, v in sorted(self.kinds.items())},
        }


def assistant_char_spans(tokenizer: Any, messages: list[Message]) -> tuple[str, list[tuple[int, int]]]:
    """Render the conversation once; return it and the [start, end) character span of each assistant turn.

    A span runs from the end of the generation prompt to the end of the turn as the template writes it
    (content and end-of-turn token), without the whitespace the template puts between turns.
    """
    validate_messages(messages)
    full = render(tokenizer, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if i == 0:
            raise DataError("a conversation cannot start with an assistant turn (nothing to condition on)")
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not full.startswith(before) or not full.startswith(upto):
            raise DataError(
                "the chat template renders a conversation prefix differently from the whole conversation "
                f"(at message {i}); per-turn loss masks would be wrong. Fix the template (chat_template.jinja)"
            )
        start = len(before)
        end = start + len(upto[start:].rstrip())
        if end <= start:
            raise DataError(f"assistant message {i} renders to nothing; remove empty turns from the data")
        spans.append((start, end))
    return full, spans


def encode_with_labels(tokenizer: Any, messages: list[Message]) -> tuple[list[int], list[int], list[int]]:
    """Token ids, labels (-100 outside assistant turns) and the token index where each assistant turn ends."""
    text, spans = assistant_char_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    turn_ends: list[int] = []
    t = 0  # one pass: spans and tokens are both in text order
    for start, end in spans:
        while t < len(ids) and offsets[t][0] < start:
            t += 1
        first = t
        while t < len(ids) and offsets[t][1] <= end:
            if offsets[t][1] > offsets[t][0]:
                labels[t] = ids[t]
            t += 1
        if t == first:
            raise DataError("an assistant turn maps to no tokens; the tokenizer's offsets are unusable")
        turn_ends.append(t)
    return ids, labels, turn_ends


def build_example(
    row: dict[str, Any], tokenizer: Any, max_length: int
) -> tuple[SFTExample | None, str | None, int]:
    """One example, or None with a drop reason. The int is how many assistant turns truncation removed."""
    messages = row["messages"]
    if not any(m.get("role") == "assistant" for m in messages):
        return None, "no_assistant_turn", 0
    ids, labels, ends = encode_with_labels(tokenizer, messages)
    cut = 0
    if len(ids) > max_length:
        fitting = [e for e in ends if e <= max_length]
        if not fitting:
            return None, "too_long", 0
        cut = len(ends) - len(fitting)
        ids, labels, ends = ids[: fitting[-1]], labels[: fitting[-1]], fitting
    ex = SFTExample(
        id=str(row.get("id", "")),
        kind=str(row.get("kind", "unknown")),
        input_ids=ids,
        labels=labels,
        turns=len(ends),
        prompt=prompt_text(messages),
    )
    return ex, None, cut


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Read introspection rows; a malformed row is an error naming its line (never silently skipped)."""
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or "messages" not in row:
            raise DataError(f"{path} row {n} has no 'messages' list; introspection rows need one")
        validate_messages(row["messages"], where=f"{path} row {n} messages")
    return rows


def build_examples(
    rows: list[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[SFTExample], BuildStats]:
    stats = BuildStats(rows_in=len(rows))
    out: list[SFTExample] = []
    for row in rows:
        ex, reason, cut = build_example(row, tokenizer, max_length)
        if ex is None:
            stats.dropped[reason or "unknown"] += 1
            continue
        if cut:
            stats.truncated += 1
            stats.turns_cut += cut
        stats.kept += 1
        stats.kinds[ex.kind] += 1
        stats.tokens += len(ex.input_ids)
        stats.target_tokens += ex.target_tokens
        stats.max_tokens_seen = max(stats.max_tokens_seen, len(ex.input_ids))
        out.append(ex)
    if stats.dropped or stats.truncated:
        log.info(
            "sft data: kept %d/%d rows, truncated %d (%d assistant turns cut), dropped %s",
            stats.kept,
            stats.rows_in,
            stats.truncated,
            stats.turns_cut,
            dict(stats.dropped),
        )
    return out, stats


def split_examples(
    examples: list[SFTExample], eval_fraction: float, seed: int
) -> tuple[list[SFTExample], list[SFTExample]]:
    """Seeded train/held-out split by prompt (`character.training.split`): every row of a prompt on one
    side. With eval_fraction > 0 and at least 2 distinct prompts, both sides are non-empty; otherwise
    nothing is held out."""
    return split_sft(examples, lambda e: e.prompt or e.id, eval_fraction, seed)


def to_dataset(examples: list[SFTExample]) -> Any:
    """A `datasets.Dataset` with `input_ids` and `labels`: TRL keeps a given `labels` column as is."""
    from datasets import Dataset

    return Dataset.from_dict(
        {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
    )


def sft_args(cfg: Any, output_dir: Path, run_name: str = "") -> Any:
    """TRL SFTConfig from the shared trainer arguments plus what SFT needs."""
    from trl import SFTConfig

    from character.training.common import one_process_one_device, stage_training_kwargs
    from character.training.health import training_args_guard

    s = cfg.sft
    kwargs = stage_training_kwargs(cfg, cfg.sft, str(output_dir), run_name=run_name)
    args = SFTConfig(
        **kwargs,
        max_length=s.max_length,  # rows are already cut to fit (whole turns); TRL's own cut is a no-op
        packing=False,  # packing changes per-example loss weighting; the data is short anyway
        eval_strategy="no",  # the held-out loss is computed once after training, then re-verified
        dataset_num_proc=None,
    )
    training_args_guard(args)
    one_process_one_device(args)
    return args


def build_trainer(
    cfg: Any,
    model: Any,
    tokenizer: Any,
    train: list[SFTExample],
    held: list[SFTExample],
    *,
    output_dir: Path,
    callbacks: list[Any],
    run_name: str = "",
) -> Any:
    """An SFTTrainer with a fresh LoRA on `model` (a loaded model, or a reference loaded here in training
    form, QLoRA included), fed pre-tokenised rows whose labels mask non-assistant tokens."""
    from trl import SFTTrainer

    from character.errors import ConfigError
    from character.training import tracking
    from character.training.common import load_training_model, lora_config

    # Arguments before the model: under ZeRO-3 they switch on partitioned loading (zero.Init).
    args = sft_args(cfg, output_dir, run_name)
    tracking.configure(cfg.train, Path(output_dir).parent)
    if isinstance(model, str):
        model = load_training_model(model, cfg.lora, cfg.backend.device)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(train),
        eval_dataset=to_dataset(held) if held else None,
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora),
        callbacks=callbacks,
    )
    tracking.point(trainer, Path(output_dir).parent)
    model_in_training: Any = trainer.model
    trainable = sum(int(p.numel()) for p in model_in_training.parameters() if p.requires_grad)
    if trainable == 0:
        raise ConfigError(f"lora.target_modules = {cfg.lora.target_modules!r} leaves no trainable parameters")
    log.info(
        "SFT: %d train / %d held-out rows, %s trainable parameters", len(train), len(held), f"{trainable:,}"
    )
    return trainer
