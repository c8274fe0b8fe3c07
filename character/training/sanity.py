"""The sanity probe: before dpo, sft or merge registers a model, does it still speak?

Training gates watch numbers the trainer logs; a checkpoint can still come out broken (a collapse the
gates did not see, a merge that scrambled weights, a corrupted save). So every candidate is compared
with the model it was made from (its base), on the same device, in two cheap ways:

1. greedy replies to a few fixed prompts (`sanity.prompts`, `sanity.max_new_tokens`, with
   `sanity.repetition_penalty` 1.1: without it the embedded model and the project's own demo persona
   model loop greedily on most prompts, with it neither does), each checked with the audit's own
   detectors (`character.eval.audit` / `character.filters`): empty, garbage characters, a loop, a
   foreign script. Only a *new* defect counts (a prompt whose base reply was
   clean and whose candidate reply is not): what the base already does is not the training's doing.
   More than `sanity.max_new_defects` of them fails.
2. per-token NLL on a fixed reference text (a few plain exchanges, assistant tokens only, rendered by
   the one chat renderer): the candidate's may be at most `sanity.max_nll_factor` x the base's. A
   collapsed model (uniform over 49,152 tokens) scores ~10.8 nats per token where the base scores ~2.4.

    report = probe("artifacts/runs/x/dpo/adapter", base_ref="embedded", cfg=cfg)
    gate(candidate_dir, base_ref=..., cfg=cfg, stage_dir=run_dir / "dpo", what="DPO adapter")

`gate` writes `sanity.json` in the stage directory and, on failure, moves the candidate to
`aborted/` with `REASON.txt` and raises `TrainingAborted` (exit 1): nothing is registered.
The base's measurements are cached per process (the pipeline's dpo and merge share one base).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from character.atomic import atomic_write_json, atomic_write_text
from character.config import RunConfig
from character.errors import TrainingAborted

log = logging.getLogger(__name__)

# Plain, neutral exchanges any instruction-tuned model finds unsurprising. Written for this probe.
REFERENCE: tuple[tuple[str, str], ...] = (
    (
        "What do bees make?",
        "Bees make honey from the nectar of flowers. They store it in wax combs inside the hive, "
        "and it feeds the colony through the winter.",
    ),
    (
        "How do I make toast?",
        "Put a slice of bread in the toaster and wait until it is golden brown. Spread butter on it "
        "while it is still warm.",
    ),
    (
        "Why do we have seasons?",
        "The Earth's axis is tilted. As the planet moves around the Sun, each half of the world leans "
        "towards it for part of the year, which brings longer and warmer days.",
    ),
)

SANITY_FILE = "sanity.json"


def reply_defects(prompt: str, reply: str) -> list[str]:
    """The audit's per-reply defects that mean a model no longer speaks (not style defects)."""
    from character.eval.audit import has_script_slip, loop_detail
    from character.filters.script import find_garbage

    if not reply.strip():
        return ["empty"]
    out = []
    if find_garbage(reply):
        out.append("garbage")
    if loop_detail(reply):
        out.append("loop")
    if has_script_slip(reply, prompt):
        out.append("script")
    return out


@dataclass
class Measurement:
    replies: list[str]
    nll: float  # mean per-token NLL of the reference replies
    tokens: int


@dataclass
class SanityReport:
    candidate: str
    base: str
    passed: bool
    nll_candidate: float
    nll_base: float
    nll_ratio: float
    max_nll_factor: float
    new_defects: int
    max_new_defects: int
    replies: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        if self.passed:
            return (
                f"passed: NLL {self.nll_candidate:.3f} vs base {self.nll_base:.3f} (x{self.nll_ratio:.2f}), "
                f"{self.new_defects} new defective replies of {len(self.replies)}"
            )
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").exists()


def _device(cfg: RunConfig) -> str:
    from character.training import distributed

    return distributed.device(cfg.backend.device)


def measure(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, repetition_penalty: float = 1.0
) -> Measurement:
    """Greedy replies to `prompts` (one left-padded batch, optionally with a repetition penalty) and the
    per-token NLL of REFERENCE."""
    import torch

    from character.chat import encode

    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [encode(tokenizer, [{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    width = max(len(x) for x in ids)
    inp = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=dev)
    att = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=dev)
    with torch.inference_mode():
        out = model.generate(
            input_ids=inp,
            attention_mask=att,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=repetition_penalty,
            pad_token_id=pad,
            top_p=None,
            top_k=None,
            temperature=None,
        )
    replies = [tokenizer.decode(o[width:], skip_special_tokens=True).strip() for o in out]
    total, count = 0.0, 0
    for question, answer in REFERENCE:
        user = [{"role": "user", "content": question}]
        prompt_ids = encode(tokenizer, user, add_generation_prompt=True)
        full = encode(
            tokenizer, [*user, {"role": "assistant", "content": answer}], add_generation_prompt=False
        )
        x = torch.tensor([full], device=dev)
        with torch.inference_mode():
            logits = model(input_ids=x).logits.float()[0, :-1]
        logps = torch.log_softmax(logits, dim=-1).gather(-1, x[0, 1:, None])[:, 0]
        target = logps[len(prompt_ids) - 1 :]  # the assistant reply and its end-of-turn token
        total += -float(target.sum())
        count += int(target.numel())
    return Measurement(replies, total / max(count, 1), count)


_BASE_CACHE: dict[tuple[Any, ...], Measurement] = {}


def _files_key(path: str) -> tuple[Any, ...]:
    p = Path(path)
    if not p.is_dir():
        return (path,)
    return (
        str(p.resolve()),
        *sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()),
    )


def probe(model_dir_or_ref: str | Path, *, base_ref: str, cfg: RunConfig) -> SanityReport:
    """Compare the candidate (a full model dir/ref, or a LoRA adapter dir on top of `base_ref`) with
    `base_ref`: greedy replies to `cfg.sanity.prompts` and NLL on the fixed reference text."""
    from character.models import load_model, load_tokenizer, resolve_model

    t0 = time.perf_counter()
    s = cfg.sanity
    dev = _device(cfg)
    cand = str(model_dir_or_ref)
    adapter = _is_adapter(Path(cand))
    tok = load_tokenizer(base_ref if adapter else cand)
    key = (_files_key(resolve_model(base_ref)), tuple(s.prompts), s.max_new_tokens, s.repetition_penalty, dev)
    args = (s.prompts, s.max_new_tokens, s.repetition_penalty)
    if adapter:
        model = load_model(base_ref, dev, adapter=cand)
        candidate = measure(model, tok, *args)
        if key not in _BASE_CACHE:
            with model.disable_adapter():  # the base, exactly: same weights, adapter off
                _BASE_CACHE[key] = measure(model, tok, *args)
    else:
        model = load_model(cand, dev)
        candidate = measure(model, tok, *args)
        if key not in _BASE_CACHE:
            del model
            base_tok = load_tokenizer(base_ref)
            _BASE_CACHE[key] = measure(load_model(base_ref, dev), base_tok, *args)
    base = _BASE_CACHE[key]
    return judge(cand, base_ref, candidate, base, cfg, seconds=time.perf_counter() - t0)


def judge(
    cand: str,
    base_ref: str,
    candidate: Measurement,
    base: Measurement,
    cfg: RunConfig,
    *,
    seconds: float = 0.0,
) -> SanityReport:
    """The verdict from two measurements (pure: tested on fixed replies and numbers)."""
    s = cfg.sanity
    replies: list[dict[str, Any]] = []
    examples: list[str] = []
    new = 0
    for prompt, b, c in zip(s.prompts, base.replies, candidate.replies, strict=True):
        bd, cd = reply_defects(prompt, b), reply_defects(prompt, c)
        fresh = [d for d in cd if not bd]
        new += bool(fresh)
        if fresh and len(examples) < 2:
            examples.append(f"{prompt!r} -> {c[:80]!r} ({', '.join(fresh)})")
        replies.append(
            {"prompt": prompt, "base": b, "candidate": c, "base_defects": bd, "candidate_defects": cd}
        )
    ratio = candidate.nll / base.nll if base.nll > 0 else float("inf")
    reasons = []
    if not ratio <= s.max_nll_factor:  # also catches NaN
        reasons.append(
            f"NLL on the reference text {candidate.nll:.3f} nats/token is {ratio:.2f} x the base's "
            f"{base.nll:.3f} (> sanity.max_nll_factor {s.max_nll_factor:g})"
        )
    if new > s.max_new_defects:
        reasons.append(
            f"{new} of {len(s.prompts)} greedy probe replies are defective where the base's were clean "
            f"(> sanity.max_new_defects {s.max_new_defects}): {'; '.join(examples)}"
        )
    return SanityReport(
        candidate=cand,
        base=base_ref,
        passed=not reasons,
        nll_candidate=round(candidate.nll, 4),
        nll_base=round(base.nll, 4),
        nll_ratio=round(ratio, 4),
        max_nll_factor=s.max_nll_factor,
        new_defects=new,
        max_new_defects=s.max_new_defects,
        replies=replies,
        reasons=reasons,
        seconds=round(seconds, 2),
    )


def gate(
    candidate: Path, *, base_ref: str, cfg: RunConfig, stage_dir: Path, what: str
) -> SanityReport | None:
    """Probe `candidate` before it is registered. Writes `stage_dir/sanity.json`; on failure moves the
    candidate to `stage_dir/aborted/` with `REASON.txt` and raises TrainingAborted."""
    if not cfg.sanity.enabled:
        log.warning("sanity.enabled = false: %s is registered without the sanity probe", what)
        return None
    report = probe(candidate, base_ref=base_ref, cfg=cfg)
    atomic_write_json(Path(stage_dir) / SANITY_FILE, {"what": what, **report.to_dict()})
    if report.passed:
        log.info("sanity probe of %s %s (%.1f s)", what, report.summary(), report.seconds)
        return report
    dest = Path(stage_dir) / "aborted"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.move(str(candidate), str(dest))
    atomic_write_text(dest / "REASON.txt", f"sanity probe: {report.summary()}\n")
    raise TrainingAborted(
        f"{what} failed the sanity probe: {report.summary()}; nothing was registered, the model is kept "
        f"at {dest} (details: {Path(stage_dir) / SANITY_FILE}). Lower the stage's learning_rate, or "
        "check the files if they were edited"
    )
