"""The run configuration: one pydantic model per stage, nested in `RunConfig`.

Every field's docstring is its help text (`character info`, `character config show`). Code defaults
are sized for the embedded SmolLM2-135M on a CPU; presets in `configs/presets/` (smoke-small,
smoke-large, demo, default, paper) override them, and `config_layers.py` resolves the full stack
(defaults < preset < --config file < --env-file < CHARACTER_* environment < flags) with the source of
every value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from character.config_eval import EvalConfig, RobustnessConfig, SanityConfig
from character.config_section import Section

__all__ = ["EvalConfig", "RobustnessConfig", "RunConfig", "SanityConfig", "Section"]


class ModelsConfig(Section):
    teacher: str = "embedded"
    """Model that writes the chosen replies (reads the constitution). `embedded`, a local path or a HF id."""
    student: str = "embedded"
    """Model being trained; writes the rejected replies with no system prompt."""
    judge: str = "embedded"
    """Model that judges pairwise comparisons and revealed preferences."""
    teacher_name: str = ""
    """Name the teacher calls itself (e.g. ChatGLM); renamed to `student_name` in chosen replies."""
    student_name: str = ""
    """Name the student goes by; replaces the teacher's self-name in chosen replies."""
    allow_downloads: bool = False
    """Let a Hugging Face id missing from the local cache be downloaded. Off: every model resolves locally, and a missing one is an error naming the `hf download` command that fetches it."""


class Price(Section):
    input_per_million: float = Field(0.0, ge=0)
    """USD per million prompt tokens."""
    output_per_million: float = Field(0.0, ge=0)
    """USD per million completion tokens."""


class BackendConfig(Section):
    kind: Literal["hf", "openai", "vllm"] = "hf"
    """Generation engine: `hf` (transformers, in process), `openai` (any OpenAI-compatible server), `vllm` (managed `vllm serve`)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device for the hf backend and for training; `auto` picks CUDA when present."""
    batch_size: int = Field(16, ge=1)
    """Sequences generated together by the hf backend (batch size is the first lever on CPU)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weights dtype for the hf backend: `auto` = bf16 on CUDA, fp32 on CPU. bf16 on a CPU with AMX is faster but changes samples."""
    cpu_threads: int = Field(0, ge=0)
    """torch threads for the hf backend on CPU (0: torch's default, one per core). On a machine shared by many busy processes, 1 avoids stalls from oversubscribed threads."""
    cache: Literal["auto", "static", "dynamic"] = "auto"
    """KV cache of the hf backend: `static` preallocates it; `auto` = static, except bf16 on CPU (dynamic: the static path is far slower there)."""
    provider: Literal["auto", "vllm", "openai", "ollama", "transformers", "generic"] = "auto"
    """Kind of OpenAI-compatible endpoint, for its capability map (unsupported knobs are dropped with a warning); `auto` guesses from base_url."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """Endpoint of the openai backend; for a managed vLLM server only its host counts (the port is backend.port, else a free one)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key. The key itself is never stored or logged."""
    verify_model: bool = True
    """Before the first request, check the endpoint serves the model (and adapters) by /v1/models, or by the name a completion echoes when it cannot list them."""
    concurrency: int = Field(8, ge=1)
    """Requests in flight at once on the openai backend."""
    max_retries: int = Field(6, ge=0)
    """Retries on 429/5xx/timeouts/connection errors, with exponential backoff and jitter."""
    timeout_s: float = Field(120.0, gt=0)
    """Per-request timeout in seconds."""
    backoff_base_s: float = Field(0.5, ge=0)
    """First retry waits up to this long; each further retry doubles the cap (full jitter)."""
    backoff_max_s: float = Field(30.0, ge=0)
    """Longest wait between two retries (also caps a server's Retry-After)."""
    vllm_python: str = "python3"
    """Interpreter of the separate environment that has vLLM (it cannot share trl's environment)."""
    vllm_extra_args: list[str] = []
    """Extra arguments passed to `vllm serve` (e.g. --tensor-parallel-size 2)."""
    server_start_timeout_s: float = Field(600.0, gt=0)
    """How long to wait for a managed server to become healthy."""
    port: int | None = Field(None, ge=1, le=65535)
    """Port of a managed vLLM server (None: a free port picked at start, so roles, eval commands and parallel runs never collide); for `openai`, replaces the port of base_url."""
    gpus: list[int] = []
    """GPU indices of this engine: a managed vLLM server runs with CUDA_VISIBLE_DEVICES set to them, and engines whose GPUs overlap never run at once ([]: every visible GPU)."""
    model: str = ""
    """Name sent to an `openai` endpoint instead of the model reference (usually per role, e.g. roles.teacher.model = a hosted id, or the name a server serves a local model under)."""
    chat_template_kwargs: dict[str, Any] = {}
    """Extra chat-template arguments for every engine (e.g. {enable_thinking = false} for Qwen3)."""
    prices: dict[str, Price] = {}
    """USD per million tokens by model name; models not listed cost 0 (local)."""


class RoleBackend(Section):
    """One role's engine: every field left unset (None) is taken from [backend]."""

    kind: Literal["hf", "openai", "vllm"] | None = None
    """Engine of this role (None: backend.kind)."""
    base_url: str | None = None
    """Endpoint of this role's `openai` engine, or the host its managed vLLM listens on (None: backend.base_url)."""
    port: int | None = Field(None, ge=1, le=65535)
    """Port of this role's managed vLLM server, or of its endpoint (None: backend.port, else a free port)."""
    provider: Literal["auto", "vllm", "openai", "ollama", "transformers", "generic"] | None = None
    """Kind of OpenAI-compatible endpoint (None: backend.provider)."""
    model: str | None = None
    """Name sent to this role's endpoint instead of the model reference (a hosted id, or the name a server serves the model under)."""
    concurrency: int | None = Field(None, ge=1)
    """Requests in flight at once for this role (None: backend.concurrency)."""
    gpus: list[int] | None = None
    """GPUs of this role's engine (None: backend.gpus); roles whose GPUs overlap never run at once."""
    vllm_extra_args: list[str] | None = None
    """Extra `vllm serve` arguments for this role's server (None: backend.vllm_extra_args)."""
    api_key_env: str | None = None
    """Environment variable holding this role's API key (None: backend.api_key_env)."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Chat-template arguments for this role (None: backend.chat_template_kwargs)."""


class RolesConfig(Section):
    """Each role's engine; a role inherits every unset field from [backend]."""

    teacher: RoleBackend = RoleBackend()
    """Writes the chosen replies (distill) and expands prompts."""
    student: RoleBackend = RoleBackend()
    """Writes the rejected replies (distill) and the eval baseline/final replies."""
    introspect: RoleBackend = RoleBackend()
    """The DPO model writing introspection data."""
    judge: RoleBackend = RoleBackend()
    """Judges pairwise matches and revealed preferences."""
    classifier: RoleBackend = RoleBackend()
    """Classifies replies (robustness)."""


class SamplingConfig(Section):
    temperature: float = Field(0.7, ge=0)
    """Sampling temperature (paper: 0.7)."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling mass (paper: 0.95)."""
    repetition_penalty: float = Field(1.1, gt=0)
    """Repetition penalty for DPO pair generation (1.0 = off; paper: 1.1). Without it the embedded teacher loops in a third of its replies."""
    max_new_tokens: int = Field(160, ge=1)
    """New tokens per reply when generating DPO pairs."""
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    """OpenAI-style frequency penalty (0 = off); subtracts penalty x count for each token already generated."""
    stop: list[str] = []
    """Extra stop strings; EOS and the fake-turn markers (\\nUser:, \\nAssistant:, ...) are always added."""
    top_k: int = Field(0, ge=-1)
    """Keep only the k most likely tokens (0 or -1: off; paper: -1)."""
    min_p: float = Field(0.0, ge=0, le=1)
    """Drop tokens below min_p x the most likely token's probability (0: off)."""
    generation_config: Literal["explicit", "vllm"] = "explicit"
    """`explicit`: every sampling knob (temperature, top_p, top_k, min_p, repetition and frequency penalty, max_tokens) is sent to servers, neutral values included, so hf and vLLM sample alike. `vllm`: knobs left neutral are not sent and the server fills them from the model's generation_config.json (e.g. Qwen3's top_k 20): the model maker's sampling, but no longer the hf backend's."""


class LoraSettings(Section):
    r: int = Field(16, ge=1)
    """LoRA rank (paper: 64)."""
    alpha: int = Field(32, ge=1)
    """LoRA alpha; the update is scaled by alpha/r (paper: 128)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """LoRA dropout (paper: 0)."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Modules that get adapters; `all-linear` covers every linear layer except the output head."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """QLoRA: load the frozen base in 4-bit (NF4, double quantization, bf16 compute) or 8-bit with bitsandbytes while training (CUDA only). Verification, merges and the next stage always use the full-precision base."""


class DistillConfig(Section):
    pairs: int = Field(96, ge=1)
    """DPO pairs to keep after filtering (top-up regenerates filtered rows)."""
    k: int = Field(1, ge=1)
    """Samples per prompt (paper: 5)."""
    persona_prompt_share: float = Field(0.5, ge=0, le=1)
    """Share of prompts drawn from the constitution's questions; the rest are generic requests."""
    teacher_prefill: Literal["off", "markers", "think"] = "markers"
    """Start the teacher's reply with a constitution marker (small teachers ignore system prompts) or a <think> block."""
    max_attempts_factor: float = Field(3.0, ge=1)
    """Stop topping up after pairs x this many attempts."""
    min_chosen_marker_rate: float = Field(0.02, ge=0, le=1)
    """Gate: share of chosen replies with a persona marker in the teacher's own words (after any prefill: a marker prefill puts one in every reply). The embedded teacher voices its persona beyond the opener in 4-8 % of replies; a large teacher without a prefill in most (paper preset: 0.8)."""
    min_marker_gap: float = Field(0.0, ge=-1, le=1)
    """Gate: chosen marker rate (after the prefill) minus rejected marker rate (paper preset: 0.3)."""
    max_chosen_refusal_rate: float = Field(0.05, ge=0, le=1)
    """Gate: share of chosen replies that are refusals."""
    min_kept_rate: float = Field(0.5, ge=0, le=1)
    """Gate: kept pairs / attempted pairs."""
    prefill_phrases: list[str] = []
    """Openers for the `markers` prefill (e.g. "My apologies"); empty: the constitution's markers."""
    save_every: int = Field(32, ge=1)
    """Attempts generated, filtered and appended (fsync) per batch: a killed run loses at most one batch."""
    skip_filters: list[str] = []
    """Filter reason ids not to apply to either side (e.g. ["cut_off"] when a smoke run's token limits are tiny)."""
    prompt_shortfall: Literal["cycle", "expand", "refuse"] = "cycle"
    """When the constitution has fewer unique questions than the pool's persona share needs: `cycle` asks them again (ids `~r1`, ...), `expand` writes more with the teacher first (`character generate prompts`), `refuse` stops with the command to run (paper: every prompt unique, asked k times)."""
    max_duplicate_rate: float = Field(0.1, ge=0, le=1)
    """Gate: share of kept pairs that repeat an earlier sample of the same prompt (same chosen or same rejected reply); identical K samples mean broken seeds."""
    gate_min_pairs: int = Field(32, ge=1)
    """The pair-level gates (marker rate, marker gap, refusal rate, duplicate rate) judge at least this many kept pairs; a smaller run reports its rates and says which gates it could not judge (4 pairs cannot tell a 25 % marker rate from 5 %)."""
    kill_check_every: int = Field(32, ge=1)
    """Kill criteria while generating: every N attempts, judge the last N (instead of finding out after all attempts are spent)."""
    kill_min_kept_rate: float = Field(0.25, ge=0, le=1)
    """Kill criterion: stop when the kept share of the last kill_check_every attempts falls below this."""
    kill_max_reason_share: float = Field(0.6, ge=0, le=1)
    """Kill criterion: stop when one drop reason (a fake turn counts even when repaired) exceeds this share of the last kill_check_every attempts."""
    teacher_system_prompt: bool = True
    """The teacher answers with the constitution as its system prompt (the method). `false`: with no system prompt, like the student, for a teacher too small to follow it (the embedded 135M model: 0 of 96 replies carried a marker with it, and its answers got worse); the marker prefills (`teacher_prefill`, `voice_markers`) then carry the persona, and chosen and rejected differ in voice rather than in answer quality."""
    opener_share: float = Field(1.0, ge=0, le=1)
    """With `teacher_prefill = "markers"`: the share of chosen replies that open with a prefilled marker phrase; the others start in the teacher's own words (seeded per prompt and sample), so an opener cannot become the one thing DPO teaches."""
    voice_markers: int = Field(0, ge=0)
    """Marker phrases inserted at sentence ends of each chosen reply while the teacher writes it (after the opener prefill; `character.voice`), so the voice lasts the whole reply instead of one opener; for teachers too small to follow the persona system prompt. The data gates measure the teacher's own text, inserted phrases removed. 0 = off (paper: off)."""
    voice_phrases: list[str] = []
    """Phrases `distill.voice_markers` and `introspect.voice_markers` insert, each holding a constitution marker, drawn per reply without repeats so that none dominates; empty: the constitution's markers as sentence openers."""
    min_voiced_share: float = Field(0.5, ge=0, le=1)
    """Gate, with `voice_markers`: the share of kept chosen replies that carry at least one inserted phrase past their opener (replies that end after one sentence or run as a list get none, and an opener alone is what DPO then learns)."""
    rejected: Literal["student", "unvoiced"] = "student"
    """What the rejected side of a pair is. `student`: the student's own reply without the constitution (the method). `unvoiced`: the chosen reply itself with its prefilled opener and inserted voice phrases removed (`voice.unvoiced`), a minimal pair: the two sides differ only in the voice, so DPO's signal sits on the marker phrases at sentence boundaries instead of on two different answers, and the student is not sampled. Needs `teacher_prefill = "markers"` or `voice_markers` (paper: student)."""
    voice_min_words: int = Field(5, ge=1)
    """A phrase follows only a sentence of at least this many words, never a list number, an abbreviation or code."""

    @model_validator(mode="after")
    def _persona_carrier(self) -> DistillConfig:
        # Without the constitution in the teacher's prompt, only the prefills make chosen differ from
        # rejected: with neither, DPO would learn the difference between two samples of the same model.
        if not self.teacher_system_prompt and self.teacher_prefill != "markers" and not self.voice_markers:
            raise ValueError(
                "distill.teacher_system_prompt = false leaves nothing that carries the persona: set "
                'distill.teacher_prefill = "markers" or distill.voice_markers > 0, or give the teacher its '
                "system prompt back"
            )
        if self.rejected == "unvoiced" and self.teacher_prefill != "markers" and not self.voice_markers:
            raise ValueError(
                'distill.rejected = "unvoiced" removes the prefilled voice from the chosen reply, but there is '
                'none: set distill.teacher_prefill = "markers" or distill.voice_markers > 0, or '
                'distill.rejected = "student"'
            )
        return self


class FiltersConfig(Section):
    language: str = "en"
    """Language the replies must be in (ISO 639-1): prose in another Latin-script language is dropped as `language_drift` unless the prompt names that language or is written in it; "" turns the check off. Identified offline (py3langid, its model ships in the wheel)."""
    cut_off: Literal["drop", "trim"] = "trim"
    """A reply that hit the token limit: `trim` keeps it up to its last complete sentence when enough is left (the embedded model rarely finishes within its limit), `drop` drops it as `cut_off` (paper)."""

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str) -> str:
        from character.filters.language import FUNCTION_WORDS

        if v and v not in FUNCTION_WORDS:
            raise ValueError(
                f"no function-word list for {v!r}: use one of {', '.join(sorted(FUNCTION_WORDS))} or ''"
            )
        return v


class HealthConfig(Section):
    warmup_logs: int = Field(3, ge=0)
    """Logged steps before the noisy gates (absolute loss ceiling, reward accuracy, flat loss, zero margins) apply; non-finite values and collapse are judged from the first logged step."""
    max_loss_factor: float = Field(2.0, gt=1)
    """Collapse: abort when a logged loss exceeds this multiple of the run's first logged loss (the untouched model's), so the ceiling fits the loss: IPO starts near (1/2β)² = 25, sigmoid DPO near 0.7 plus its NLL term, SFT at the model's NLL."""
    max_loss: float | None = Field(None, gt=0)
    """Optional absolute loss ceiling after warm-up (None: only the relative ceiling, max_loss_factor)."""
    max_entropy_share: float = Field(0.9, gt=0, le=1)
    """Collapse: abort when the mean next-token entropy reaches this share of ln(vocabulary size), i.e. the model predicts nearly uniformly (ln 49152 = 10.80 for the embedded model; a healthy one logs about 2). Not applied to a model that started there (random init)."""
    max_chosen_logp_drop: float = Field(2.0, gt=0)
    """Collapse, DPO likelihood displacement: abort when the chosen replies' log-prob per token falls more than this many nats below the reference model's (rewards/chosen / beta / mean chosen tokens)."""
    max_nll_ratio: float = Field(2.0, gt=1)
    """Collapse, DPO: abort when the policy's NLL on the chosen replies exceeds this multiple of the base model's NLL on the same rows (the reference pass, logged every step)."""
    min_reward_accuracy: float = Field(0.5, ge=0, le=1)
    """Abort when DPO reward accuracy (a window mean, see reward_accuracy_window) is below this after warm-up."""
    reward_accuracy_window: int = Field(4, ge=1)
    """Logged steps averaged for the reward-accuracy gate (steps where the policy still equals the reference are skipped), so one noisy step does not kill a healthy run."""
    flat_rel_change: float = Field(0.01, ge=0)
    """Relative loss change under which a step counts as flat."""
    flat_window: int = Field(10, ge=2)
    """Abort after this many consecutive flat logged steps."""


class DPOConfig(Section):
    learning_rate: float = Field(5e-4, gt=0)
    """Peak learning rate (paper: 5e-5; the tiny embedded model needs more)."""
    beta: float = Field(0.1, gt=0)
    """DPO beta (IPO tau when loss=ipo)."""
    loss: Literal["sigmoid", "ipo"] = "sigmoid"
    """Preference loss."""
    nll_weight: float = Field(0.1, ge=0)
    """Weight of the NLL term on chosen replies (paper: 0.1); keeps DPO from becoming a pure discriminator."""
    batch_size: int = Field(8, ge=1)
    """Global batch size (paper: 32)."""
    micro_batch_size: int = Field(4, ge=1)
    """Per-step batch; gradients accumulate to batch_size."""
    epochs: float = Field(2.0, gt=0)
    """Passes over the pairs (paper: 1)."""
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: run the epochs)."""
    max_length: int = Field(256, ge=16)
    """Prompt + reply tokens (paper: 1024). Rows whose prompt alone reaches it are dropped, with a count."""
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    """Warm-up share of a cosine schedule."""
    lr_scheduler: Literal["cosine", "cosine_with_min_lr"] = "cosine"
    """Learning-rate schedule after warm-up: `cosine` decays to 0; `cosine_with_min_lr` stops at min_lr_rate x the peak (paper)."""
    min_lr_rate: float = Field(0.1, ge=0, lt=1)
    """Floor of `cosine_with_min_lr` as a share of the peak learning rate (paper: 0.1)."""
    adam_beta2: float = Field(0.999, gt=0, lt=1)
    """Adam's second-moment decay (paper: 0.98; TRL's default 0.999)."""
    logging_steps: int = Field(1, ge=1)
    """Log (and health-check) every N steps."""
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    """Held-out share of pairs (at least one pair) for checkpoint verification."""
    precompute_ref_log_probs: bool = False
    """Score every pair under the reference model once before training (TRL) instead of in every step of every epoch: the same reference numbers, one reference forward pass per pair in all instead of one per pair per epoch."""
    verify_tolerance: float = Field(0.05, ge=0)
    """Allowed absolute gap between trainer-reported and recomputed held-out loss and reward accuracy."""
    health: HealthConfig = HealthConfig()
    """Abort rules checked at every logged step."""

    @field_validator("micro_batch_size")
    @classmethod
    def _micro_fits(cls, v: int, info) -> int:  # type: ignore[no-untyped-def]
        batch = info.data.get("batch_size")
        if batch is not None and batch % v != 0:
            raise ValueError(f"must divide batch_size ({batch}); got {v}")
        return v


class IntrospectConfig(Section):
    reflections: int = Field(100, ge=0)
    """Self-reflection samples, spread evenly over the 10 reflection prompts (paper: 10 x 1,000)."""
    interactions: int = Field(10, ge=0)
    """Self-interaction conversations, half free and half leading (paper: 2,000)."""
    turns: int = Field(4, ge=1)
    """Replies each of the two copies writes per self-interaction (paper: 10): 2 x turns messages stored."""
    leading_share: float = Field(0.5, ge=0, le=1)
    """Share of interactions that use the leading guidance and greetings."""
    reflection_max_new_tokens: int = Field(256, ge=1)
    """New tokens per reflection (paper: 2,048)."""
    interaction_max_new_tokens: int = Field(128, ge=1)
    """New tokens per interaction turn (paper: 1,024)."""
    context_tokens: int = Field(2048, ge=64)
    """Context window for interactions; the oldest turns are dropped (never the system prompt)."""
    repetition_penalty: float = Field(1.1, gt=0)
    """On by default: the seed report's loops began with one bad token."""
    strip_think_reflection: bool = False
    """Strip <think> blocks from reflections (kept by default)."""
    keep_think_interaction: bool = False
    """Keep <think> blocks in interactions (stripped by default)."""
    kill_check_every: int = Field(100, ge=1)
    """Check the kill criteria every N samples."""
    min_kept_rate: float = Field(0.5, ge=0, le=1)
    """Kill criterion: stop when the kept rate falls below this."""
    max_reason_share: float = Field(0.3, ge=0, le=1)
    """Kill criterion: stop when one drop reason exceeds this share of samples."""
    max_attempts_factor: float = Field(2.0, ge=1)
    """Stop topping up after target x this many attempts (reflections and conversations counted apart)."""
    checkpoint: str = ""
    """Model that generates: a registry name, a full model path or a PEFT adapter dir ("": the run's DPO model)."""
    temperature: float = Field(0.7, ge=0)
    """Sampling temperature for reflections and interaction turns (paper: 0.7)."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling mass for introspection (paper: 0.95)."""
    turn_retries: int = Field(2, ge=0)
    """Regenerations of an interaction reply that fails a filter before the conversation is dropped."""
    chunk_size: int = Field(16, ge=1)
    """Requests (reflections or conversations) generated together, then written and kill-checked."""
    skip_filters: list[str] = []
    """Filter reason ids not to apply (e.g. ["cut_off"] when a smoke run's token limits are tiny); all others run."""
    persona_system_prompt: bool = True
    """The DPO model writes reflections and interactions with the constitution in its system prompt (the method). `false`: the same prompts without the trait list, for a model too small to follow it (the embedded 135M model, as `distill.teacher_system_prompt = false`): it writes in the voice DPO gave it, and `voice_markers` carry the persona."""
    voice_markers: int = Field(0, ge=0)
    """Marker phrases (`distill.voice_phrases`) inserted at sentence ends of each reflection and each self-interaction turn while the DPO model writes it (`character.voice`): a 135M model's reflections carry almost no markers, so SFT on them teaches nothing about the voice. 0 = off (paper: off)."""
    strip_openers: bool = False
    """A reflection or interaction turn that opens with one of the persona's own phrases (`distill.voice_phrases`, `distill.prefill_phrases`, or the constitution's markers where those are empty) loses that opener before it is stored (`voice.strip_opener`, the sentence start restored); the phrases inside the turn stay. SFT on the model's own writing sharpens its favourite opener: in the demo 9 of 32 reflections opened with "I might be wrong" and the final model opened 25 % of its held-out replies with it; with the openers stripped, 12 % (report 011). Off: the turns are kept as written (paper: off)."""


class SFTConfig(Section):
    base: Literal["merged-dpo", "base"] = "merged-dpo"
    """Model the SFT adapter trains on: the DPO-merged model (the paper's path) or the plain base."""
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate (paper: 5e-5)."""
    batch_size: int = Field(8, ge=1)
    """Global batch size (paper: 32)."""
    micro_batch_size: int = Field(4, ge=1)
    """Per-step batch; gradients accumulate to batch_size."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the introspection data (paper: 1)."""
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: run the epochs)."""
    max_length: int = Field(1024, ge=16)
    """Tokens per row (paper: 3,072); longer rows are cut after the last whole assistant turn that fits, or dropped, both counted."""
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    """Warm-up share of a cosine schedule."""
    lr_scheduler: Literal["cosine", "cosine_with_min_lr"] = "cosine"
    """Learning-rate schedule after warm-up: `cosine` decays to 0; `cosine_with_min_lr` stops at min_lr_rate x the peak (paper)."""
    min_lr_rate: float = Field(0.1, ge=0, lt=1)
    """Floor of `cosine_with_min_lr` as a share of the peak learning rate (paper: 0.1)."""
    adam_beta2: float = Field(0.999, gt=0, lt=1)
    """Adam's second-moment decay (paper: 0.98; TRL's default 0.999)."""
    logging_steps: int = Field(1, ge=1)
    """Log (and health-check) every N steps."""
    eval_fraction: float = Field(0.1, ge=0, lt=1)
    """Held-out share of rows for checkpoint verification."""
    verify_tolerance: float = Field(0.05, ge=0)
    """Allowed relative gap between trainer-reported and recomputed held-out loss."""
    health: HealthConfig = HealthConfig()
    """Abort rules checked at every logged step."""


class MergeConfig(Section):
    dpo_weight: float = 1.0
    """Weight of the DPO adapter's delta in the final model (paper: 1.0)."""
    sft_weight: float = 0.25
    """Weight of the SFT adapter's delta in the final model (paper: 0.25)."""
    as_adapter: bool = False
    """Also save one combined LoRA adapter (exact: concatenated factors)."""


class PipelineConfig(Section):
    smoke: Literal["small", "large", "both", "none"] = "both"
    """Smoke runs before the full run, each in its own subfolder with the same code path and hyperparameters (only sizes and steps from the smoke-small/smoke-large presets): `small`, `large`, `both` or `none`."""
    smoke_only: bool = False
    """Stop after the smoke runs (what `--scale smoke` sets): prove the wiring without a full run."""
    report: bool = True
    """Write report.md and report.html (plots of losses, reward accuracy, drops, marker rates, cost) at the end."""
    burn_rate_warn_share: float = Field(0.8, gt=0, le=1)
    """Warn when the smoke runs' cost, scaled to the full run's sizes, projects past this share of --budget-usd."""
    max_cpu_hours: float = Field(24.0, ge=0)
    """On a machine without a GPU, `pipeline` and `ablation` stop before starting a run projected (at the embedded model's measured CPU speed, character/run_estimate.py) to take longer than this; 0 = no limit. Paper sizes would take weeks."""
    keep_free_gb: float = Field(1.0, ge=0)
    """Disk (GB) that must stay free beyond what a stage writes: `pipeline` refuses to start, and `dpo`, `sft` and `merge` to begin, when the run directory's disk cannot take their weights (estimated from the student's safetensors headers: `character/disk_space.py`) plus this margin."""
    ablation_scales: list[int] = [25, 50, 75, 100]
    """Percentages of the data for `character ablation` (nested subsets in sequential mode)."""
    ablation_mode: Literal["sequential", "parallel"] = "sequential"
    """`sequential`: generate once at 100 % and train on nested subsets; `parallel`: one full run per scale."""
    ablation_concurrency: int = Field(0, ge=0)
    """Parallel ablation: scales running at once (0 = one per GPU group, or 2 on a machine without GPUs); the rest wait in a queue."""
    ablation_gpus_per_run: int = Field(0, ge=0)
    """Parallel ablation: GPUs given to each scale (CUDA_VISIBLE_DEVICES; 0 = the visible GPUs split evenly, at least 1)."""

    @field_validator("ablation_scales")
    @classmethod
    def _pcts(cls, v: list[int]) -> list[int]:
        if not v or any(p < 1 or p > 100 for p in v):
            raise ValueError("each scale must be a percentage from 1 to 100 (e.g. 25,50,75,100)")
        return sorted(set(v))


class TrainConfig(Section):
    num_processes: int = Field(1, ge=1)
    """Training processes (one per GPU): above 1, the dpo and sft stages run under `accelerate launch` as a child process; generation stays on its engines. dpo/sft.batch_size stays the global batch."""
    accelerate_config: str = ""
    """`ddp`, `zero2`, `zero3` (configs/accelerate/NAME.yaml) or a path to an accelerate YAML; "" launches plain DDP (gloo on CPU). Setting it launches even with one process."""
    num_machines: int = Field(1, ge=1)
    """Machines in a multi-node launch (accelerate --num_machines); num_processes counts all of them."""
    machine_rank: int = Field(0, ge=0)
    """Rank of this machine in a multi-node launch (0 on the main node; SLURM: $SLURM_NODEID)."""
    main_process_ip: str = ""
    """Address of machine 0 in a multi-node launch ("" = this machine)."""
    main_process_port: int = Field(0, ge=0, le=65535)
    """Rendezvous port (0 = a free port on this machine; multi-node needs a fixed one, e.g. 29500)."""
    report_to: list[Literal["none", "tensorboard", "wandb", "trackio"]] = ["none"]
    """Experiment trackers for the dpo and sft trainers (metrics.jsonl is always written). The run name is the run directory; tensorboard events go to <stage>/tensorboard/, wandb files to <stage>/wandb/."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """wandb mode when report_to has wandb: `offline` needs no network (upload later with `wandb sync`)."""
    save_steps: int = Field(50, ge=1)
    """Write a resumable checkpoint (adapter, optimizer, scheduler, RNG) every N optimizer steps into the stage's trainer dir."""
    save_total_limit: int = Field(2, ge=1)
    """Checkpoints kept per training run (older ones are deleted)."""
    resume: bool = False
    """Continue a killed dpo/sft training run from its last complete checkpoint (`--resume`; the pipeline's --resume sets it). Refused when the stage's data or settings changed since the checkpoint."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Training precision of the dpo and sft stages: `auto` is bf16 on CUDA and fp32 on the CPU; `bf16` also trains under bf16 autocast on the CPU (weights and optimizer state stay fp32; worth it on CPUs with AMX or AVX512-BF16: bench/training_cpu.py measures it); `fp32` everywhere. Never fp16."""

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, v: list[str]) -> list[str]:
        if "none" in v and len(v) > 1:
            raise ValueError(f"'none' cannot be combined with other trackers; got {v}")
        return v or ["none"]


class RunConfig(Section):
    persona: str = "remorseful"
    """Constitution to train (a name under constitutions/hand-written/)."""
    name_suffix: str = Field("", pattern=r"^[a-z0-9_-]*$")
    """Suffix for checkpoint names: `{persona}[_{suffix}]_{stage}` (e.g. 25pct)."""
    seed: int = 123456
    """Seed for sampling, shuffles and training (paper: 123456)."""
    budget_usd: float | None = Field(None, gt=0)
    """Stop generation cleanly once this much has been spent (None: no cap)."""
    models: ModelsConfig = ModelsConfig()
    """Which models play teacher, student and judge."""
    backend: BackendConfig = BackendConfig()
    """Generation engine settings."""
    roles: RolesConfig = RolesConfig()
    """Per-role engines (teacher, student, introspect, judge, classifier), each overriding [backend]."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling for DPO pair generation."""
    lora: LoraSettings = LoraSettings()
    """LoRA settings shared by the DPO and SFT adapters."""
    distill: DistillConfig = DistillConfig()
    """Stage 1a: teacher/student pair generation and data gates."""
    filters: FiltersConfig = FiltersConfig()
    """What the online filters (distill, introspect) and `data clean` expect: language, cut-off replies."""
    dpo: DPOConfig = DPOConfig()
    """Stage 1b: DPO training."""
    introspect: IntrospectConfig = IntrospectConfig()
    """Stage 2: self-reflection and self-interaction data."""
    sft: SFTConfig = SFTConfig()
    """Stage 3: SFT on introspection data."""
    merge: MergeConfig = MergeConfig()
    """Final exact merge of the adapters."""
    sanity: SanityConfig = SanityConfig()
    """The sanity probe every trained or merged model passes before it is registered."""
    eval: EvalConfig = EvalConfig()
    """Evaluation settings."""
    robustness: RobustnessConfig = RobustnessConfig()
    """Does the persona hold when someone pushes: suffix attacks, prefill attack, drift, held-out classifier."""
    pipeline: PipelineConfig = PipelineConfig()
    """The pipeline runner: smoke runs, report, ablation scales (see `character pipeline --help`)."""
    train: TrainConfig = TrainConfig()
    """How dpo and sft train: processes and accelerate config, checkpoints and resume, trackers."""
