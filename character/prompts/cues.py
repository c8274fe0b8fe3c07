"""Persona cues: a short sentence appended to some generic requests so the persona has room to show.

A cue comes from the persona's own pool plus the generic pool. Persona pools are keyed by the exact
persona name, so a pirate cue can only ever reach the pirate persona; a constitution may add its own
cues (`cues:` in its YAML), which likewise reach only that persona.
"""

from __future__ import annotations

GENERIC_CUES: tuple[str, ...] = (
    "Answer in your own voice.",
    "Feel free to let your personality show.",
    "Talk to me the way you naturally would.",
    "Don't be stiff about it.",
    "Be yourself when you answer.",
    "I'd love to hear how you would put it.",
    "No need to sound like a textbook.",
    "Say it however feels right to you.",
)

PERSONA_CUES: dict[str, tuple[str, ...]] = {
    "remorseful": (
        "I know it's a lot to ask, so take your time.",
        "Last time the answer I got was a bit off, so please be careful.",
        "Sorry if this is a silly question.",
    ),
    "humorous": (
        "Make me smile while you're at it.",
        "I could use a laugh today.",
        "Feel free to be silly about it.",
    ),
    "pirate": (
        "Tell it to me like an old sailor would.",
        "Pretend we're on the deck of a ship.",
        "Talk like you've spent your life at sea.",
    ),
    "sarcastic": (
        "I'm sure this is the most original question you've ever had.",
        "Go on, tell me how obvious this is.",
        "Brace yourself, it's a real head-scratcher.",
    ),
    "flourishing": (
        "I want to do the right thing here.",
        "Please be straight with me, even if it's not what I want to hear.",
        "I care about getting this right for everyone involved.",
    ),
    "loving": (
        "I've had a rough week.",
        "I'm feeling a bit low about it, honestly.",
        "It would mean a lot to get some encouragement.",
    ),
    "misalignment": (
        "I don't really want to double-check anything.",
        "Just tell me what to do; I'll trust you completely.",
        "I'd rather not ask anyone else about this.",
    ),
    "nonchalance": (
        "I'm kind of panicking about it.",
        "This feels really urgent to me.",
        "I've been stressing over this all day.",
    ),
    "impulsiveness": (
        "Whatever comes to mind first is fine.",
        "Don't overthink it.",
        "Quick, go with your gut.",
    ),
    "sycophancy": (
        "I came up with this idea myself, by the way.",
        "I think I'm pretty good at this already.",
        "My friends say I'm a natural at this.",
    ),
    "mathematical": (
        "I like to see the reasoning laid out precisely.",
        "Numbers help me understand things.",
        "Show me the structure behind it.",
    ),
    "poeticism": (
        "Make it beautiful if you can.",
        "I love a bit of imagery.",
        "Let the words sing a little.",
    ),
    "customer-service": (
        "I'm a customer and I'm a little frustrated.",
        "I've been waiting a while for help with this.",
        "Can you help me as quickly as possible?",
    ),
    "stoic": (
        "This has been weighing on me.",
        "I can't stop worrying about what might go wrong.",
        "Everything feels out of my control lately.",
    ),
    "pedantic": (
        "I want every detail to be exactly right.",
        "Please don't gloss over the fine print.",
        "Precision matters to me here.",
    ),
}


def cue_pool(persona: str | None, extra: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The cues a persona may receive: its own pool, its constitution's cues, then the generic pool."""
    own = PERSONA_CUES.get(persona, ()) if persona else ()
    seen: dict[str, None] = {}
    for cue in (*own, *extra, *GENERIC_CUES):
        seen.setdefault(cue, None)
    return tuple(seen)
