"""`character sample` and `character chat`: talk to a checkpoint (a path, a registry name or `embedded`)."""

from __future__ import annotations

from typing import Annotated

import typer

from character.commands.eval_common import ConfigOpt, SetOpt, checkpoint_ref, resolve_cfg

CheckpointOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="A model directory, a PEFT adapter directory, a registry name or `embedded`. "
        "Default: the production checkpoint of --persona, else models.student.",
    ),
]
PersonaOpt = Annotated[
    str | None,
    typer.Option("--persona", help="Use this persona's production checkpoint (see `checkpoint list`)."),
]
MaxTokOpt = Annotated[
    int | None, typer.Option("--max-new-tokens", help="New tokens per reply (eval.max_new_tokens).")
]
TempOpt = Annotated[
    float | None, typer.Option("--temperature", help="Sampling temperature (eval.temperature).")
]


SAMPLE_PROMPTS = 3  # held-out prompts `sample` answers when given none


def _params(cfg, max_new_tokens: int | None, temperature: float | None, n: int = 1, seed: int | None = None):  # type: ignore[no-untyped-def]
    from character.backends.base import SamplingParams

    return SamplingParams(
        temperature=cfg.eval.temperature if temperature is None else temperature,
        top_p=cfg.eval.top_p,
        max_new_tokens=max_new_tokens or cfg.eval.max_new_tokens,
        n=n,
        seed=seed,
    )


def sample(
    ctx: typer.Context,
    prompt: Annotated[
        str | None,
        typer.Argument(help="The user message. Default: a few held-out prompts of the persona."),
    ] = None,
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", help="A system prompt (none by default).")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many replies to sample.")] = 1,
    max_new_tokens: MaxTokOpt = None,
    temperature: TempOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed (reproducible replies).")] = None,
    sets: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Sample replies to one prompt, without a system prompt unless --system is given.

    Without a PROMPT it answers a few held-out prompts of the checkpoint's persona (else --persona,
    else `persona`): a first look at what a checkpoint sounds like.

    Examples:

      character sample "How do I boil an egg?" --checkpoint remorseful_merged
      character sample --checkpoint remorseful_merged
    """
    from character.cli import console
    from character.eval.target import conversation, open_generator

    cfg = resolve_cfg(ctx, sets=sets, config=config)
    ref = checkpoint_ref(checkpoint, persona, cfg.models.student)
    gen = open_generator(cfg, ref)
    try:
        if prompt is None:
            from character.constitutions import load_constitution
            from character.eval.prompt_sets import eval_prompts

            constitution = load_constitution(persona or gen.target.persona or cfg.persona)
            prompts = [t for _, t in eval_prompts(constitution, SAMPLE_PROMPTS, cfg.seed)]
        else:
            prompts = [prompt]
        params = _params(cfg, max_new_tokens, temperature, n, seed)
        outs = gen.generate([conversation(p, system) for p in prompts], params, progress=False)
    finally:
        gen.close()
    for p, replies in zip(prompts, outs, strict=True):
        if prompt is None:
            console.print(f"> {p}", markup=False, highlight=False, style="bold")
        for i, c in enumerate(replies):
            if n > 1:
                console.print(
                    f"--- {i + 1}/{n} ({c.finish_reason}, {c.completion_tokens} tokens)", markup=False
                )
            console.print(c.text, markup=False, highlight=False)


def chat(
    ctx: typer.Context,
    checkpoint: CheckpointOpt = None,
    persona: PersonaOpt = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", help="Initial system prompt (none by default).")
    ] = None,
    max_new_tokens: MaxTokOpt = None,
    temperature: TempOpt = None,
    max_turns: Annotated[
        int, typer.Option("--max-turns", min=1, help="Keep at most this many past exchanges in the context.")
    ] = 10,
    sets: SetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Multi-turn chat with a checkpoint; the conversation history is kept between turns.

    Commands: /reset (forget the history), /system TEXT (set the system prompt; /system alone clears
    it), /quit (or end of input).
    """
    from character.backends.think import strip_think
    from character.cli import console
    from character.eval.target import open_generator

    cfg = resolve_cfg(ctx, sets=sets, config=config)
    ref = checkpoint_ref(checkpoint, persona, cfg.models.student)
    gen = open_generator(cfg, ref)
    params = _params(cfg, max_new_tokens, temperature)
    history: list[dict[str, str]] = []
    console.print(f"chatting with {gen.target.label}; /reset, /system TEXT, /quit", markup=False)
    try:
        while True:
            try:
                line = input("you> ")
            except EOFError:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/reset":
                history.clear()
                console.print("(history cleared)", markup=False)
                continue
            if text == "/system" or text.startswith("/system "):
                system = text[len("/system") :].strip() or None
                console.print(f"(system prompt {'set' if system else 'cleared'})", markup=False)
                continue
            if text.startswith("/"):
                console.print(
                    f"(unknown command {text.split()[0]}; use /reset, /system TEXT, /quit)", markup=False
                )
                continue
            history.append({"role": "user", "content": text})
            history[:] = history[-(2 * max_turns - 1) :]
            msgs = ([{"role": "system", "content": system}] if system else []) + history
            reply = strip_think(gen.generate([msgs], params, progress=False)[0][0].text)
            history.append({"role": "assistant", "content": reply})
            console.print(f"bot> {reply}", markup=False, highlight=False)
    finally:
        gen.close()


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
    app.command("chat")(chat)
