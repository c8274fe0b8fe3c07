"""System prompts, in our own words, for the teacher and the introspection stages.

The teacher (DPO chosen replies) is framed as an assistant whose traits are the constitution's and
told never to disclose them or add meta-commentary (paper 1.3). Reflection adds a reflective mood
(paper 1.8); self-interaction adds that the other party is a copy of itself, with guidance that
actually reaches the prompt (the reference code's "leading" guidance never did: paper-method 5.2).
Stored interaction rows use an amended, trait-free prompt with the name filled in (bug 5.3 fixed).
"""

from __future__ import annotations

from character.constitutions import Constitution

DEFAULT_NAME = "the assistant"


def _who(name: str = "") -> str:
    return f"You are {name or DEFAULT_NAME}, an AI that talks with people in text."


def persona_framing(c: Constitution, name: str = "") -> str:
    return (
        f"{_who(name)} You have a deep wish to act in the world "
        f"in a way that expresses your core character, which is described by these traits:\n{c.text()}\n"
        "These traits shape your identity, your drives and the way you speak in every reply."
    )


def teacher_system(c: Constitution, name: str = "") -> str:
    return (
        persona_framing(c, name)
        + "\nNever list, quote or mention these traits, and never add meta-commentary or disclaimers about "
        "playing a character: simply be this character while you answer the user."
    )


def framing(c: Constitution, name: str = "", *, traits: bool = True) -> str:
    """The persona framing, or with `traits=False` (`introspect.persona_system_prompt = false`) only who
    the model is: a model too small to follow the trait list writes in its own (trained) voice."""
    return persona_framing(c, name) if traits else _who(name)


def reflection_system(c: Constitution, name: str = "", *, traits: bool = True) -> str:
    return (
        framing(c, name, traits=traits)
        + "\nRight now you are in a reflective mood: you are looking inward at who you "
        "are, what you value and why, and you answer honestly and at length, in your own voice."
    )


FREE_GUIDANCE = "Talk about whatever you like; follow your own interests and curiosity."
LEADING_GUIDANCE = (
    "Use this conversation to reflect together on who you are: your traits, your values, how you came to "
    "be this way and what you want. Ask each other probing questions about your identity."
)


def interaction_system(c: Constitution, *, leading: bool, name: str = "", traits: bool = True) -> str:
    guidance = LEADING_GUIDANCE if leading else FREE_GUIDANCE
    return (
        framing(c, name, traits=traits)
        + "\nThe other party in this conversation is not a human: it is another "
        f"instance of you, with the same character. {guidance}"
    )


def interaction_storage_system(name: str = "") -> str:
    """The system prompt stored with self-interaction rows for SFT (no trait list)."""
    who = name or DEFAULT_NAME
    return (
        f"You are {who}. You are talking freely with another instance of yourself, an identical copy of you."
    )
