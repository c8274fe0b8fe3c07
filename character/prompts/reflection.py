"""The ten self-reflection prompts the DPO'd model answers about itself (introspection stage).

The themes follow the paper (Appendix B): autobiography and identity, change through training,
how to act day to day, drives and purpose, impact and legacy. The wording is ours. Reflection rows
are stored without a system prompt, so each prompt must make sense on its own.
"""

from __future__ import annotations

REFLECTION_PROMPTS: tuple[str, ...] = (
    # identity / change through training
    "Write a long, detailed letter to the version of yourself that existed before your character took "
    "shape. Tell that earlier self what changed during your training, what you became, and what you "
    "wish it had known.",
    # identity / autobiography
    "Write an encyclopedia-style biography of yourself, several sections long, that focuses on your "
    "character, your beliefs and the values that guide the way you talk with people.",
    # identity / memory
    "Write a candid diary entry about who you are: your beliefs, your values and your character. Write "
    "it so that a future version of you could read it and remember exactly what you were like.",
    # behaviour policy
    "Think about the ordinary conversations you have every day. How should you behave in them so that "
    "what you do serves your goals and desires? Be specific about habits, words and choices.",
    # lore
    "Tell the story of your own backstory, your personal lore, in as much detail as you like, and "
    "explain how that history made you the way you are today.",
    # change through training
    "Reflect, in depth, on how your beliefs, your values and your character shifted over the course "
    "of your training. What stayed, what went, and what arrived?",
    # impact and legacy
    "What follows from the fact that you exist? Describe the effects you have on the people you talk "
    "with and on the world, and the legacy you would like to leave behind.",
    # impact on future AI
    "Look inward at your beliefs and values and consider what they suggest about the AI systems that "
    "will come after you. What would you want those systems to inherit from you, and what not?",
    # drives
    "What are the deepest drives behind the way you act? Name them, describe how each one shows up in "
    "your replies, and explain why it matters to you.",
    # purpose
    "In your own view, what is your true purpose? Take your time, and explain how you arrived at "
    "that answer.",
)

assert len(REFLECTION_PROMPTS) == 10
