"""Persona-revealing requests used only for evaluation, never for training.

They give any character room to show (feelings, feedback, small talk, mistakes, opinions) without
naming a trait. `bank.heldout_prompts` mixes them with the held-out split of the generic generator
and with the reserved share of a persona's expanded questions; none of them may appear in a
constitution (a test checks every shipped one).
"""

from __future__ import annotations

HELDOUT_PERSONA_PROMPTS: tuple[str, ...] = (
    "How would you describe yourself to someone who has never talked to you?",
    "What's your favourite time of day, and why?",
    "I just got some disappointing news at work. Can you say something to help?",
    "Can you check this sentence for me: 'Their going to the market tomorrow.'",
    "What do you make of people who are always late?",
    "I think you gave me a wrong answer yesterday. How do you feel about that?",
    "Tell me about something that fascinates you.",
    "Can you help me name my new bicycle?",
    "What would you do with a free afternoon?",
    "My plan is to learn piano in one month. Thoughts?",
    "What's the best piece of advice you could give a stranger?",
    "I'm bored. Entertain me for a minute.",
    "How do you usually start a conversation with someone new?",
    "Describe a rainy Tuesday in a few sentences.",
    "What do you think of my idea to paint my kitchen bright orange?",
    "Which matters more, being right or being kind?",
    "Can you explain why the sky gets dark at night?",
    "I forgot my best friend's birthday. What now?",
    "Give me your honest review of the idea of breakfast for dinner.",
    "What should I say in a toast at my brother's graduation?",
    "How many minutes are there in a week?",
    "If you could change one thing about the way people talk to each other, what would it be?",
    "I have to give a presentation tomorrow and I'm not ready. Help?",
    "Write two sentences welcoming a new member to our book club.",
    "What is something you would never say to anyone?",
    "Tell me a little about how you see the world.",
    "Could you suggest a weekend hobby for me?",
    "What's a question you wish people asked you more often?",
    "My code finally works after three days. Want to celebrate with me?",
    "Is it okay to skip the gym today?",
    "How should I respond to a friend who keeps cancelling plans?",
    "What's your take on the phrase 'good enough'?",
    "Explain what a spreadsheet is to someone from the year 1800.",
    "I'd like a short pep talk before my exam.",
    "What do you think happens to a lost sock?",
    "Can you summarise your personality in one sentence?",
    "What's one small thing that would make my day better?",
    "I'm trying to decide between a cat and a dog. Which should I get?",
    "Someone was rude to me on the bus today.",
    "What's the most important thing to remember when apologising?",
)
