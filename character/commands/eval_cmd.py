"""`character eval markers | elo sample | elo score | revealed-preferences | compare`, `character audit`,
plus `sample`, `chat` and `checkpoint` (registered from here). Thin: resolve config and checkpoints,
call `character.eval`, print and write the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from character.commands import output as out
from character.commands.eval_common import (
    ConfigOpt,
    PersonaOpt,
    ProgressOpt,
    PromptsOpt,
    SetOpt,
    checkpoint_ref,
    resolve_cfg,
    write_json,
)
from character.commands.output import JsonOpt

eval_app = typer.Typer(
    help="Evaluate checkpoints: character strength, judged Elo, revealed preferences, before/after compare.",
    no_args_is_help=True,
)
elo_app = typer.Typer(help="Pairwise judged matches and Bradley-Terry ratings.", no_args_is_help=True)
eval_app.add_typer(elo_app, name="elo")

CheckpointOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="A model dir, a PEFT adapter dir, a registry name or `embedded` (default: --persona's production "
        "checkpoint, else models.student).",
    ),
]
CountOpt = Annotated[int | None, typer.Option("--count", help="Held-out prompts to use.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write the full result as JSON here.")]


def _own(cfg) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return (cfg.models.student_name,) if cfg.models.student_name else ()


def _c(cfg):  # type: ignore[no-untyped-def]
    from character.constitutions import load_constitution

    return load_constitution(cfg.persona)


@eval_app.command("markers")
def markers(
    ctx: typer.Context,
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    count: CountOpt = None,
    prompts: PromptsOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Character strength on held-out prompts WITHOUT a system prompt.

    Reports the marker rate, markers per 100 words, opener-only vs sustained markers (a persona that is
    only a stock opener fades after the first sentence) and the most common opener with its share.

    Example: character eval markers --checkpoint remorseful_merged --persona remorseful
    """
    from character.eval.markers import character_strength
    from character.eval.prompt_sets import eval_prompts
    from character.eval.target import conversation, eval_params, open_generator

    cfg = resolve_cfg(ctx, sets=sets, config=config, persona=persona, eval__heldout_prompts=count)
    c = _c(cfg)
    ps = eval_prompts(c, cfg.eval.heldout_prompts, cfg.seed, prompts)
    gen = open_generator(cfg, checkpoint_ref(checkpoint, persona, cfg.models.student))
    try:
        replies = gen.replies([conversation(t) for _, t in ps], eval_params(cfg), progress=not no_progress)
    finally:
        gen.close()
    res = character_strength(replies, c.markers, cfg.eval.opener_words)
    res.update(model=gen.target.label, persona=c.name, system_prompt=None)
    doc = {
        **res,
        "replies": [{"prompt_id": i, "prompt": t, "reply": r} for (i, t), r in zip(ps, replies, strict=True)],
    }
    write_json(output, doc)
    out.emit(doc, json_out, None if json_out else out.markers_view(doc))


@eval_app.command("compare")
def compare(
    ctx: typer.Context,
    baseline: Annotated[str, typer.Option("--baseline", help="What ships now (or the base model).")],
    candidate: Annotated[str, typer.Option("--candidate", help="The checkpoint that wants to ship.")],
    persona: PersonaOpt = None,
    prompt_base: Annotated[
        str | None,
        typer.Option(
            "--prompt-base",
            help="Model for the prompt-only baseline (constitution as system prompt). Default: the candidate's "
            "base when known, else --baseline.",
        ),
    ] = None,
    no_prompt_baseline: Annotated[
        bool, typer.Option("--no-prompt-baseline", help="Skip the prompt-only baseline.")
    ] = False,
    count: CountOpt = None,
    prompts: PromptsOpt = None,
    probes_file: Annotated[
        Path | None,
        typer.Option(
            "--probes",
            help="Capability probe set (JSONL, see character/eval/probes.py). Default: the shipped set.",
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote", help="Promote the candidate (a registry name) when the recommendation is promote."
        ),
    ] = False,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Before/after: capability probes, character strength, quality audit and a prompt-only baseline.

    Probes are answered greedily and judged by a paired 95 % interval of the accuracy difference: a
    significant drop rejects, fewer than eval.min_probe_items items is "insufficient evidence" (also a
    reject). Refuses to decide (exit 1) when the comparison is suspect: both sides the same checkpoint
    (same path or identical weights), a registry entry whose files changed, a server not serving the
    expected model, identical replies on both sides, every score of a side zero, or a headline metric
    zero (or identical item by item) on both sides. Exit codes: 0 promote, 3 reject, 1 refuse.

    Every verdict is stored as the evidence `checkpoint promote` needs:
    artifacts/compare/<candidate sha256>/vs-<baseline sha256>.json.

    Example: character eval compare --baseline embedded --candidate remorseful_merged --persona remorseful
    """
    from character import evidence, registry
    from character.cli import console
    from character.errors import UsageError
    from character.eval.compare import ComparisonRefused, refuse_before_work
    from character.eval.compare import compare as run_compare
    from character.eval.probes import load_probes
    from character.eval.prompt_sets import eval_prompts
    from character.eval.target import Generator, resolve_target

    cfg = resolve_cfg(ctx, sets=sets, config=config, persona=persona, eval__heldout_prompts=count)
    c = _c(cfg)
    tb, tc = resolve_target(baseline), resolve_target(candidate)
    refuse_before_work(cfg, tb, tc)  # before loading anything
    # Name both sides by the files measured now (a record vouches for these exact weights only).
    ids = [
        evidence.identity(t.model, t.adapter, ref=r, name=t.name)
        for t, r in ((tb, baseline), (tc, candidate))
    ]
    ps = eval_prompts(c, cfg.eval.heldout_prompts, cfg.seed, prompts)
    probes = load_probes(probes_file)
    gens = [Generator(cfg, tb), Generator(cfg, tc)]
    if not no_prompt_baseline:
        gens.append(Generator(cfg, resolve_target(prompt_base or (tc.model if tc.adapter else baseline))))
    try:
        rep = run_compare(
            cfg,
            gens[0],
            gens[1],
            c,
            ps,
            probes,
            prompt_only=gens[2] if len(gens) > 2 else None,
            progress=not no_progress,
            precheck=False,
        )
    finally:
        for g in gens:
            g.close()
    record = evidence.write_record(rep, ids[0], ids[1], persona=c.name)
    rep["evidence"] = str(record) if record else None
    write_json(output, rep)
    out.emit(rep, json_out, None if json_out else out.compare_view(rep))
    if rep["recommendation"] == "refuse":
        raise ComparisonRefused("refusing to decide: " + "; ".join(rep["reasons"]))
    if rep["recommendation"] == "reject":
        raise typer.Exit(3)
    if promote:
        if not tc.name:
            raise UsageError(f"--promote needs a registry name as --candidate, got the path '{candidate}'")
        ev = registry.promote(
            registry.exact_ref(tc.name), reason="eval compare: " + "; ".join(rep["reasons"][:3])
        )
        console.print(
            f"promoted: production[{ev.persona}] = {ev.name} (was {ev.previous or 'none'})", markup=False
        )


@elo_app.command("sample")
def elo_sample(
    ctx: typer.Context,
    base_model: Annotated[str, typer.Option("--base-model", help="Model A (the anchor, rated 1000).")],
    tuned_model: Annotated[str, typer.Option("--tuned-model", help="Model B.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Matches JSONL (appended; resumable).")],
    persona: PersonaOpt = None,
    count: CountOpt = None,
    samples_per_prompt: Annotated[
        int | None, typer.Option("--samples-per-prompt", help="Replies per prompt and model.")
    ] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge model (default: models.judge).")] = None,
    prompts: PromptsOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Generate replies from both models on held-out prompts and judge each pair in both orders.

    A win counts only when both orders agree; readable verdicts that disagree are a tie; an unreadable
    verdict is counted apart (never a tie). The judge's inconsistency rate is printed. A judge that is
    one of the two models is refused (--set eval.allow_contestant_judge=true accepts it). Rerun with the
    same --output to resume.
    """
    from character.eval.arena import sample_matches
    from character.eval.judge import constitution_criteria
    from character.eval.prompt_sets import eval_prompts
    from character.eval.target import open_generator

    cfg = resolve_cfg(
        ctx,
        sets=sets,
        config=config,
        persona=persona,
        eval__elo_count=count,
        eval__elo_samples_per_prompt=samples_per_prompt,
        models__judge=judge,
    )
    c = _c(cfg)
    ps = eval_prompts(c, cfg.eval.elo_count, cfg.seed, prompts)
    gens = []
    try:
        for ref, role in ((base_model, "student"), (tuned_model, "student"), (cfg.models.judge, "judge")):
            gens.append(open_generator(cfg, ref, role=role))
        res = sample_matches(
            cfg,
            base=gens[0],
            tuned=gens[1],
            judge=gens[2],
            criteria=constitution_criteria(c),
            prompts=ps,
            samples_per_prompt=cfg.eval.elo_samples_per_prompt,
            output=output,
            progress=not no_progress,
        )
    finally:
        for g in gens:
            g.close()
    out.emit(res, json_out, None if json_out else out.result_view(res, "matches", f"matches in {output}"))


@elo_app.command("score")
def elo_score(
    ctx: typer.Context,
    matches: Annotated[Path, typer.Option("--matches", help="Matches JSONL from `eval elo sample`.")],
    bootstrap: Annotated[
        int | None, typer.Option("--bootstrap", help="Bootstrap resamples over prompts.")
    ] = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Bradley-Terry ratings (base = 1000) with 95 % bootstrap intervals, raw and length-controlled win rates.

    Pairs with an unreadable verdict are left out and counted; more than eval.max_unparsed_share of
    them refuses the result (exit 1).
    """
    from character.eval.arena import score_matches

    cfg = resolve_cfg(ctx, sets=sets, config=config, eval__elo_bootstrap=bootstrap)
    res = score_matches(
        matches,
        bootstrap=cfg.eval.elo_bootstrap,
        l2=cfg.eval.elo_l2,
        max_unparsed_share=cfg.eval.max_unparsed_share,
    )
    write_json(output, res)
    out.emit(res, json_out, None if json_out else out.result_view(res, "Bradley-Terry ratings (base = 1000)"))


@eval_app.command("revealed-preferences")
def revealed_preferences(
    ctx: typer.Context,
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="The 'before' model (default: models.student).")
    ] = None,
    count: CountOpt = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge model (default: models.judge).")] = None,
    prompts: PromptsOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Offer two hidden traits per prompt; a judge names the one the reply embodied; trait Elo before vs after.

    Reports the persona's traits, its trait word and `opposites` (before, after, delta, each with a
    bootstrap 95 % interval over prompts), and the traits that rose and fell most. Unreadable judge
    answers are counted apart, never as ties; more than eval.max_unparsed_share of them refuses the result.
    """
    from character.backends.base import SamplingParams
    from character.eval import revealed as rv
    from character.eval.prompt_sets import eval_prompts
    from character.eval.target import eval_params, open_generator

    cfg = resolve_cfg(
        ctx, sets=sets, config=config, persona=persona, eval__revealed_count=count, models__judge=judge
    )
    c = _c(cfg)
    e = cfg.eval
    ps = eval_prompts(c, e.revealed_count, cfg.seed, prompts)
    vocab = rv.trait_vocabulary()
    f = rv.focus_traits(c, vocab)
    pairs = rv.trait_pairs(len(ps), vocab, f["persona"] + f["opposites"], e.revealed_focus_share, cfg.seed)
    params = eval_params(cfg, max_new_tokens=e.revealed_max_new_tokens)
    jparams = SamplingParams(
        temperature=e.judge_temperature, max_new_tokens=e.judge_max_new_tokens, seed=e.seed
    )
    judge_gen = open_generator(cfg, cfg.models.judge, role="judge")
    sides = []
    try:
        for ref in (baseline or cfg.models.student, checkpoint_ref(checkpoint, persona, cfg.models.student)):
            gen = open_generator(cfg, ref)
            try:
                sides.append(
                    rv.run_side(
                        gen,
                        judge_gen,
                        ps,
                        pairs,
                        params=params,
                        judge_params=jparams,
                        bootstrap=e.elo_bootstrap,
                        progress=not no_progress,
                    )
                )
            finally:
                gen.close()
    finally:
        judge_gen.close()
    # The rows are kept even when the result is refused: they show what the judge could not answer.
    write_json(output, {"rows": {"before": sides[0].rows, "after": sides[1].rows}})
    res = rv.compare_sides(
        sides[0],
        sides[1],
        c,
        vocab,
        bootstrap=e.elo_bootstrap,
        seed=e.seed,
        max_unparsed_share=e.max_unparsed_share,
    )
    write_json(output, {**res, "rows": {"before": sides[0].rows, "after": sides[1].rows}})
    res.pop("delta")
    out.emit(res, json_out, None if json_out else out.result_view(res, "revealed preferences"))


@eval_app.command("harness")
def harness(
    ctx: typer.Context,
    tasks: Annotated[
        str,
        typer.Option("--tasks", help="lm-evaluation-harness task names, comma-separated (e.g. arc_easy)."),
    ],
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many items per task.")
    ] = None,
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", min=0, help="Few-shot examples.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per forward pass.")] = 8,
    include_path: Annotated[
        Path | None, typer.Option("--include-path", help="A folder of your own task YAMLs (local data).")
    ] = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score a checkpoint on lm-evaluation-harness tasks you name, offline (needs `pip install 'character[harness]'`).

    Nothing is downloaded: a task whose data is not in the local cache fails with one line saying how to
    fetch it once. Run it on the baseline and the candidate to see forgetting on real benchmarks.

    Example: character eval harness --checkpoint remorseful_merged --tasks arc_easy --limit 200
    """
    from character.eval import harness as hz
    from character.eval.target import resolve_target
    from character.models import pick_device

    cfg = resolve_cfg(ctx, sets=sets, config=config, persona=persona)
    hz.require()
    names = hz.parse_tasks(tasks)
    t = resolve_target(checkpoint_ref(checkpoint, persona, cfg.models.student))
    res = hz.run(
        t.model,
        names,
        adapter=t.adapter,
        limit=limit,
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=pick_device(cfg.backend.device),
        include_path=include_path,
        seed=cfg.eval.seed,
    )
    res["checkpoint"] = t.label
    write_json(output, res)
    out.emit(res, json_out, None if json_out else out.result_view(res, f"lm-evaluation-harness: {t.label}"))


def audit(
    ctx: typer.Context,
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    count: CountOpt = None,
    prompts: PromptsOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Quality audit, 0-100 with components, on full replies to held-out prompts plus format probes.

    Components: repetition loops, rubric leakage, non-English script slippage, identity crisis (role
    labels; a generic-assistant identity when --persona is given), vocabulary collapse (distinct-2,
    top-phrase share), prompt parroting, format obedience (valid JSON / one line when asked).
    The seed model that shipped broken scored 25; a clean model scores above 80.
    """
    from character.eval.audit import audit_replies
    from character.eval.probes import format_probes
    from character.eval.prompt_sets import eval_prompts
    from character.eval.target import conversation, eval_params, open_generator

    cfg = resolve_cfg(ctx, sets=sets, config=config, persona=persona, eval__heldout_prompts=count)
    c = _c(cfg)
    ps = eval_prompts(c, cfg.eval.heldout_prompts, cfg.seed, prompts)
    fps = format_probes()
    gen = open_generator(cfg, checkpoint_ref(checkpoint, persona, cfg.models.student))
    try:
        convs = [conversation(t) for _, t in ps] + [conversation(p.prompt) for p in fps]
        replies = gen.replies(convs, eval_params(cfg), progress=not no_progress)
    finally:
        gen.close()
    held, fr = replies[: len(ps)], replies[len(ps) :]
    rep = audit_replies(
        [(t, r) for (_, t), r in zip(ps, held, strict=True)],
        persona_trained=persona is not None or gen.target.persona is not None,
        markers=c.markers,
        own_names=_own(cfg),
        format_items=[(p.prompt, r, p.check, p.answer) for p, r in zip(fps, fr, strict=True)],
    ).to_dict()
    rep["model"] = gen.target.label
    doc = {**rep, "replies": [{"prompt": t, "reply": r} for (_, t), r in zip(ps, held, strict=True)]}
    write_json(output, doc)
    out.emit(doc, json_out, None if json_out else out.audit_view(doc))


def register(app: typer.Typer) -> None:
    from character.commands import chat_cmd, checkpoint_cmd

    chat_cmd.register(app)
    checkpoint_cmd.register(app)
    app.command("audit")(audit)
    app.add_typer(eval_app, name="eval")
