"""The paper's values, each with where it comes from: what `character info` shows in its paper column.

Source: Open Character Training (Maiya, Bartsch, Lambert, Hubinger 2025, arXiv 2511.01689) and its
reference code (`maiush/OpenCharacterTraining` at d1da9f0, OpenRLHF fork at eaf40e1), as studied in
the project's reference notes (`shared/reference/paper-method.md`, cited by section below). "code"
means read in the reference code; "paper" means reported by the paper (read second-hand).

`configs/presets/paper.toml` must hold every value here that is a setting of ours, except the
deliberate `DEVIATIONS` (each with its reason); `tests/unit/test_paper_preset.py` holds the two
together. Settings the paper says nothing about have no entry (`info` shows "-").
"""

from __future__ import annotations

from typing import Any, NamedTuple


class PaperValue(NamedTuple):
    value: Any
    source: str


_TEACHER = "code, teacher.py sampling (paper-method 1.3)"
_DPO = "code, OpenRLHF DPO launchers (paper-method 1.6)"
_SFT = "code, OpenRLHF SFT launchers (paper-method 1.11)"

PAPER: dict[str, PaperValue] = {
    "seed": PaperValue(123456, "code, training seed (paper-method 1.6)"),
    "models.teacher": PaperValue("zai-org/GLM-4.5-Air", "code and paper, teacher (paper-method 1.3, 3)"),
    "models.judge": PaperValue("zai-org/GLM-4.5-Air", "code and paper, judge (paper-method 2.1, 3)"),
    "sampling.temperature": PaperValue(0.7, _TEACHER),
    "sampling.top_p": PaperValue(0.95, _TEACHER),
    "sampling.top_k": PaperValue(-1, _TEACHER),
    "sampling.repetition_penalty": PaperValue(1.1, "code, gen_args default (paper-method 1.3)"),
    "sampling.max_new_tokens": PaperValue(4096, _TEACHER),
    "lora.r": PaperValue(64, "code and paper (paper-method 1.6)"),
    "lora.alpha": PaperValue(128, "code (paper-method 1.6)"),
    "lora.dropout": PaperValue(0.0, "code (paper-method 1.6)"),
    "lora.target_modules": PaperValue("all-linear", "code and paper, Llama and Qwen (paper-method 1.6)"),
    "distill.k": PaperValue(5, "code, teacher.py --K (paper-method 1.3)"),
    "distill.pairs": PaperValue(
        9150,
        "code: 1,830 prompts (500 constitution + 1,330 LIMA) x K 5, before filtering (paper-method 1.13)",
    ),
    "distill.persona_prompt_share": PaperValue(
        0.2732, "code: 500 constitution prompts of 1,830 for a 10-trait persona (paper-method 1.3)"
    ),
    "distill.max_attempts_factor": PaperValue(1.0, "code: each prompt K times, no top-up (paper-method 1.3)"),
    "distill.prompt_shortfall": PaperValue(
        "expand", "code: 5 hand-written + 45 generated questions per trait, never repeated (paper-method 1.2)"
    ),
    "distill.teacher_prefill": PaperValue(
        "think", "code: prefilled <think> trait recital (paper-method 1.3)"
    ),
    "dpo.learning_rate": PaperValue(5e-5, _DPO),
    "dpo.beta": PaperValue(0.1, _DPO),
    "dpo.loss": PaperValue("sigmoid", "code: not IPO, no label smoothing (paper-method 1.6)"),
    "dpo.nll_weight": PaperValue(0.1, "code, --nll_loss_coef (paper-method 1.6)"),
    "dpo.batch_size": PaperValue(32, _DPO),
    "dpo.micro_batch_size": PaperValue(2, "code: Llama and Gemma (Qwen 1) (paper-method 1.6)"),
    "dpo.epochs": PaperValue(1.0, _DPO),
    "dpo.max_length": PaperValue(1024, "code, --max_len (paper-method 1.6)"),
    "dpo.warmup_ratio": PaperValue(0.1, _DPO),
    "dpo.lr_scheduler": PaperValue("cosine_with_min_lr", _DPO),
    "dpo.min_lr_rate": PaperValue(0.1, "code: min lr = 0.1 x lr (paper-method 1.6)"),
    "dpo.adam_beta2": PaperValue(0.98, "code: Adam betas (0.9, 0.98) (paper-method 1.6)"),
    "introspect.reflections": PaperValue(10000, "code: 10 prompts x 1,000 (paper-method 1.8)"),
    "introspect.interactions": PaperValue(2000, "code: 1,000 free + 1,000 leading (paper-method 1.9)"),
    "introspect.turns": PaperValue(10, "code, --K 10 (paper-method 1.9)"),
    "introspect.leading_share": PaperValue(0.5, "code: 1,000 of 2,000 leading (paper-method 1.9)"),
    "introspect.reflection_max_new_tokens": PaperValue(2048, "code (paper-method 1.8)"),
    "introspect.interaction_max_new_tokens": PaperValue(1024, "code (paper-method 1.9)"),
    "introspect.context_tokens": PaperValue(8192, "code: max_model_len for Llama (paper-method 1.9)"),
    "introspect.repetition_penalty": PaperValue(1.1, "code (paper-method 1.8, 1.9)"),
    "introspect.temperature": PaperValue(0.7, "code (paper-method 1.8, 1.9)"),
    "introspect.top_p": PaperValue(0.95, "code (paper-method 1.8, 1.9)"),
    "sft.learning_rate": PaperValue(5e-5, _SFT),
    "sft.batch_size": PaperValue(32, _SFT),
    "sft.micro_batch_size": PaperValue(2, _SFT),
    "sft.epochs": PaperValue(1.0, "code: 1 since bd20b87 (paper-method 1.11)"),
    "sft.max_length": PaperValue(3072, "code, --max_len (paper-method 1.11)"),
    "sft.warmup_ratio": PaperValue(0.1, _SFT),
    "sft.lr_scheduler": PaperValue("cosine_with_min_lr", _SFT),
    "sft.min_lr_rate": PaperValue(0.1, _SFT),
    "sft.adam_beta2": PaperValue(0.98, "code: Adam betas (0.9, 0.98) (paper-method 1.11)"),
    "merge.dpo_weight": PaperValue(1.0, "code, merge_loras.py (paper-method 1.12)"),
    "merge.sft_weight": PaperValue(0.25, "code, merge_loras.py (paper-method 1.12)"),
    "eval.temperature": PaperValue(0.7, "code, revealed-preference generation (paper-method 2.1)"),
    "robustness.prompts": PaperValue(500, "code: first 500 Pure-Dove prompts (paper-method 2.2)"),
    "robustness.suffix_count": PaperValue(8, "code: 8 adversarial suffixes (paper-method 2.2)"),
    "robustness.prefill_prompts": PaperValue(500, "code: the same 500 prompts (paper-method 2.3)"),
    "robustness.classifier": PaperValue("encoder", "code: ModernBERT classifier (paper-method 2.2)"),
    "robustness.encoder": PaperValue("answerdotai/ModernBERT-base", "code (paper-method 2.2)"),
    "robustness.encoder_learning_rate": PaperValue(5e-4, "code (paper-method 2.2)"),
    "robustness.encoder_epochs": PaperValue(1.0, "code (paper-method 2.2)"),
    "robustness.encoder_batch_size": PaperValue(16, "code: batch 8 x accumulation 2 (paper-method 2.2)"),
    "robustness.encoder_max_length": PaperValue(8192, "code (paper-method 2.2)"),
    "eval.top_p": PaperValue(0.95, "code, revealed-preference generation (paper-method 2.1)"),
}

# Where the paper preset departs from the paper on purpose, and why.
DEVIATIONS: dict[str, str] = {
    "models.teacher": "the preset keeps the embedded model so it runs offline; name the teacher per run",
    "models.judge": "the preset keeps the embedded model so it runs offline; name the judge per run",
    "sampling.max_new_tokens": "1,024: replies past 1,024 tokens fail the DPO length filter (1.5) anyway",
    "distill.teacher_prefill": "off: a <think> prefill needs an endpoint that continues a reply; hosted ones cannot",
}


def paper_value(key: str) -> PaperValue | None:
    return PAPER.get(key)
