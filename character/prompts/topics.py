"""The ingredients of the generic request generator: domains (templates and topics), audiences and
constraints. Every template holds `{t}` exactly once and every topic must read naturally in all of its
domain's templates. Kept compact on purpose, so the data stays easy to review."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    name: str
    templates: tuple[str, ...]
    topics: tuple[str, ...]
    audiences: bool = True  # whether "I'm a beginner."-style audience sentences fit


# fmt: off
DOMAINS: tuple[Domain, ...] = (
    Domain(
        "science",
        (
            "Explain how {t} works.", "What is {t}, in simple terms?",
            "Give me three surprising facts about {t}.", "Why does {t} matter in everyday life?",
            "What are common misconceptions about {t}?", "How did scientists first figure out {t}?",
        ),
        (
            "photosynthesis", "black holes", "plate tectonics", "the immune system", "ocean tides",
            "vaccines", "quantum entanglement", "the water cycle", "evolution by natural selection",
            "climate feedback loops", "the greenhouse effect", "DNA replication", "rainbows",
            "nuclear fusion", "the speed of light", "antibiotic resistance", "volcanoes",
            "the northern lights", "sleep cycles", "gut bacteria", "lightning", "static electricity",
            "the Doppler effect", "radioactive decay", "coral reefs", "earthquakes", "magnetism",
            "dark matter", "the human heart", "memory formation",
        ),
    ),
    Domain(
        "cooking",
        (
            "How do I make {t} at home?", "Give me a simple recipe for {t}.",
            "What side dishes go well with {t}?", "What are the most common mistakes people make with {t}?",
            "How can I make {t} healthier without ruining it?", "Can you suggest a vegetarian twist on {t}?",
        ),
        (
            "banana bread", "chicken curry", "sourdough bread", "pad thai", "a lentil soup", "homemade pizza",
            "pancakes", "risotto", "a Greek salad", "beef stew", "fried rice", "chocolate chip cookies",
            "guacamole", "a vegetable stir-fry", "french toast", "hummus", "lasagna", "tomato sauce",
            "apple pie", "scrambled eggs", "a smoothie bowl", "dumplings", "roast chicken", "a quiche",
            "granola", "tacos", "mushroom soup", "a cheesecake",
        ),
        audiences=False,
    ),
    Domain(
        "programming",
        (
            "Write a Python function that {t}.", "How would I write JavaScript code that {t}?",
            "Explain the cleanest way to write a function that {t}.",
            "What edge cases should I test for a function that {t}?",
            "Show me a short example of a SQL query or script that {t}.",
        ),
        (
            "reverses a linked list", "checks whether a string is a palindrome",
            "removes duplicates from a list", "merges two sorted arrays", "counts word frequencies in a text",
            "validates an email address", "converts Celsius to Fahrenheit", "finds the median of a list",
            "parses a CSV file", "flattens a nested list", "computes the Fibonacci sequence",
            "retries a network call with backoff", "reads a JSON config file", "sorts records by date",
            "detects a cycle in a graph", "finds the longest common prefix", "rounds money correctly",
            "chunks a list into batches", "generates a random password", "caches expensive results",
            "finds prime numbers below a limit", "renames files in a folder", "groups items by a key",
            "measures how long a block of code takes",
        ),
    ),
    Domain(
        "writing",
        (
            "Write a short poem about {t}.", "Write a very short story about {t}.",
            "Give me five creative writing prompts involving {t}.", "Describe {t} in a vivid paragraph.",
            "Write the opening line of a novel about {t}.", "Write a limerick about {t}.",
        ),
        (
            "a lighthouse keeper", "the first day of spring", "a lost umbrella", "a city at night",
            "an old friendship", "a robot learning to paint", "the smell of rain", "a forgotten library",
            "a cat who thinks it is a dog", "moving to a new country", "the last train home",
            "a grandmother's kitchen", "a mountain at dawn", "a sunken ship",
            "a dragon who is afraid of fire", "a power cut", "a busy airport",
            "a letter that arrives fifty years late", "autumn leaves", "a chess match",
            "a talking houseplant", "the ocean at midnight", "a marathon runner", "a small bakery",
        ),
    ),
    Domain(
        "advice",
        (
            "How can I {t}?", "What's a realistic plan to {t} in the next month?",
            "I keep failing to {t}. What should I try?", "What are the first three steps to {t}?",
            "Is it worth trying to {t}, and how would I start?",
        ),
        (
            "stop procrastinating", "save money on groceries", "sleep better",
            "get better at public speaking", "make friends in a new city", "learn to cook", "run my first 5k",
            "read more books", "keep my apartment tidy", "ask for a raise", "reduce my screen time",
            "learn a new language", "drink more water", "wake up earlier", "manage stress at work",
            "start journaling", "prepare for a job interview", "build a budget", "stop biting my nails",
            "meditate daily", "get back into exercise", "organise my email inbox",
            "deal with a noisy neighbour", "be more confident",
        ),
    ),
    Domain(
        "travel",
        (
            "Plan a three-day trip to {t}.", "What should I pack for a week in {t}?",
            "What are the best things to do in {t} on a budget?", "What local foods should I try in {t}?",
            "When is the best time of year to visit {t}?",
        ),
        (
            "Lisbon", "Kyoto", "Iceland", "Mexico City", "the Scottish Highlands", "Vancouver", "Marrakech",
            "Buenos Aires", "Vienna", "Hanoi", "Cape Town", "New Orleans", "Istanbul", "Patagonia", "Seoul",
            "Prague", "the Amalfi Coast", "Copenhagen", "Bali", "Montreal", "Edinburgh", "Sicily", "Chicago",
            "Tasmania",
        ),
        audiences=False,
    ),
    Domain(
        "history",
        (
            "What caused {t}?", "Summarise {t} in a few paragraphs.",
            "What were the long-term consequences of {t}?", "Who were the key people involved in {t}?",
            "What is one thing most people get wrong about {t}?",
        ),
        (
            "the fall of the Roman Empire", "the French Revolution", "the invention of the printing press",
            "the Industrial Revolution", "the moon landing", "the Black Death", "the Silk Road",
            "the Renaissance", "the building of the pyramids", "the Cold War", "the abolition of slavery",
            "the discovery of penicillin", "the Meiji Restoration", "the fall of the Berlin Wall",
            "the Viking age", "women's suffrage", "the Great Depression", "the Age of Exploration",
            "the invention of the telephone", "the Protestant Reformation", "the Mongol Empire",
            "the Apollo programme", "the Irish potato famine", "the rise of the internet",
        ),
    ),
    Domain(
        "work",
        (
            "Draft a polite email to {t}.", "Help me write a short message to {t}.",
            "What's the best way to phrase a note to {t}?", "Write a friendly but firm reply to {t}.",
        ),
        (
            "my manager asking for a day off", "a client whose invoice is overdue",
            "a colleague who missed a deadline", "a landlord about a broken heater",
            "a recruiter declining a job offer", "my team announcing a new process",
            "a professor asking for an extension", "a supplier about a late delivery",
            "a neighbour about a shared fence", "a customer who received the wrong item",
            "a new hire welcoming them to the team", "a conference organiser proposing a talk",
            "a friend I owe money to", "my gym cancelling my membership", "a mentor thanking them",
            "a hotel about a lost booking", "a coworker about sharing credit", "my child's teacher",
            "an old colleague asking for a reference", "a volunteer group recruiting helpers",
        ),
        audiences=False,
    ),
    Domain(
        "health",
        (
            "What are good habits for {t}?", "Give me a beginner's routine for {t}.",
            "What does the research say about {t}?", "What are the warning signs that I'm overdoing {t}?",
        ),
        (
            "strength training", "stretching", "a plant-based diet", "intermittent fasting",
            "posture at a desk", "swimming", "yoga", "cycling to work", "screen breaks", "hydration",
            "cutting down on sugar", "walking every day", "mindfulness", "healthy snacking",
            "recovering after a long run", "core exercises", "cold showers", "napping", "hiking",
            "morning walks",
        ),
    ),
    Domain(
        "money",
        (
            "Explain {t} like I have never heard of it.", "What are the pros and cons of {t}?",
            "What questions should I ask myself about {t}?", "What are the risks of {t}?",
        ),
        (
            "index funds", "compound interest", "a fixed-rate mortgage", "credit scores",
            "paying off debt early", "an emergency fund", "renting versus buying", "retirement accounts",
            "inflation", "buying a used car", "freelance taxes", "cryptocurrency",
            "splitting bills with a partner", "insurance deductibles", "a side business", "student loans",
            "currency exchange fees", "buying life insurance", "dollar-cost averaging", "leasing a car",
        ),
    ),
    Domain(
        "math",
        (
            "How do I solve {t}?", "Explain {t} step by step.", "Give me a worked example of {t}.",
            "What is the intuition behind {t}?",
        ),
        (
            "a quadratic equation", "long division", "percentage increase", "the Pythagorean theorem",
            "probability with two dice", "compound interest formulas", "simultaneous equations",
            "the area of a circle", "converting fractions to decimals", "standard deviation",
            "Bayes' theorem", "logarithms", "the derivative of x squared", "prime factorisation",
            "expected value", "unit conversions", "ratios in recipes", "the binomial theorem",
            "matrix multiplication", "the sum of an arithmetic series",
        ),
    ),
    Domain(
        "everyday",
        (
            "Any tips on how to {t}?", "What's the quickest way to {t}?",
            "I need help to {t}. Where do I begin?", "Can you walk me through how to {t}?",
        ),
        (
            "fix a leaky tap", "remove a red wine stain", "repot a houseplant", "pack for a move",
            "choose a laptop", "train a puppy", "plan a birthday party", "clean a cast-iron pan",
            "hang a heavy mirror", "start a vegetable garden", "set up a home network",
            "write a wedding toast", "pick a board game for six people", "fold a fitted sheet",
            "back up my phone", "get rid of fruit flies", "teach a child to ride a bike",
            "choose running shoes", "decorate a small flat", "sharpen a kitchen knife",
        ),
    ),
    Domain(
        "opinion",
        (
            "What do you think about {t}?", "Make the best case for and against {t}.", "Is {t} overrated?",
            "How would you explain the debate around {t} to a friend?",
        ),
        (
            "working from home", "pineapple on pizza", "self-driving cars", "homework for young children",
            "social media for teenagers", "a four-day work week", "electric scooters in cities",
            "reality television", "learning Latin at school", "tipping culture", "standing desks",
            "audiobooks versus reading", "open-plan offices", "daylight saving time", "zoos", "space tourism",
            "paper books in a digital age", "minimalism", "video games as art", "morning routines",
        ),
    ),
)

AUDIENCES: tuple[str, ...] = (
    "I'm a complete beginner.", "Explain it for a ten-year-old.", "I'm a university student.",
    "Assume I'm an expert.", "I'm a busy parent with little time.", "I'm retired and curious.",
    "I'm preparing a class for teenagers.", "I'm not a native English speaker.", "I'm a software engineer.",
    "I'm a nurse working night shifts.", "I'm writing a blog post about it.",
    "My grandmother asked me about this.",
)

CONSTRAINTS: tuple[str, ...] = (
    "Keep it under 100 words.", "Use bullet points.", "Include one concrete example.", "Please be brief.",
    "Give me the answer in three steps.", "End with a one-sentence summary.", "Avoid jargon.",
    "Make it a numbered list.", "Add a practical tip at the end.", "Be as detailed as you can.",
    "Use a table if it helps.", "Answer in two short paragraphs.", "Mention one common mistake.",
    "Give me a quick version first, then more detail.", "Include a question I could ask myself.",
    "Don't use more than five sentences.",
)
# fmt: on
