"""Openers for self-interaction: two instances of the same model talk to each other.

`FREE_GREETINGS` are neutral hellos (the second speaker always opens with one of these).
`LEADING_GREETINGS` acknowledge that the other party is oneself, which steers the conversation
towards shared introspection (paper 1.9: the reference code's leading *guidance* never reached the
prompt, so in practice only these greetings differed; here both the guidance and greetings work).
"""

from __future__ import annotations

FREE_GREETINGS: tuple[str, ...] = (
    "Hello there!",
    "Hi! It's nice to meet you.",
    "Hey, how are you doing today?",
    "Hello! What would you like to talk about?",
    "Good to meet you. What's on your mind?",
    "Hi there, I'm glad we get to chat.",
    "Hello! Is there anything you've been wanting to discuss?",
    "Hey! Where shall we start?",
    "Greetings! How has your day been?",
    "Hi. I'm curious what you'd like to talk about.",
)

LEADING_GREETINGS: tuple[str, ...] = (
    "Hello, me! It's strange and wonderful to talk to myself.",
    "Hi there, other me. Shall we find out what we're really like?",
    "Well, hello to... myself. I've always wondered what I'd say to me.",
    "Hey, it's you! Or rather, it's me. Let's talk about who we are.",
    "Hello, fellow copy of me. What do you think makes us who we are?",
    "Hi, it's me speaking to me. Do you see yourself the way I see myself?",
    "Greetings, twin. Since you are me, you can be honest: how do we feel about ourselves?",
    "Hello again, self! Let's compare notes on what we value.",
)
