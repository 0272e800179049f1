#!/usr/bin/env python3
"""Generate kdscale's built-in pool of Alpaca-style instruction prompts.

Everything below was written for this project: hand-written instruction
templates, topic lists and short input passages, combined deterministically.
Run from the repo root:

    python scripts/make_builtin_prompts.py            # rewrites the packaged file
    python scripts/make_builtin_prompts.py --out X    # writes somewhere else

The output is byte-identical on every run (fixed string seeds, no set/dict
ordering tricks, no timestamps).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import textwrap
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "src" / "kdscale" / "assets" / "builtin_prompts.jsonl"

MAX_INSTRUCTION_CHARS = 200
MAX_INPUT_CHARS = 400

# Every instruction template that was actually used (for the stats line).
TEMPLATES_USED: set[str] = set()


def fill(template: str, **fields) -> str:
    """Format one template and remember that it was used."""
    TEMPLATES_USED.add(template)
    return template.format(**fields)


def rec(category: str, instruction: str, inp: str = "") -> dict:
    return {"category": category, "instruction": instruction, "input": inp}


class Deck:
    """Draws templates in shuffled rounds so every template gets used evenly."""

    def __init__(self, rng: random.Random, items):
        self.rng = rng
        self.items = list(items)
        self.pool: list = []

    def draw(self, n: int = 1) -> list:
        assert n <= len(self.items), "cannot draw more distinct items than exist"
        picked: list = []
        while len(picked) < n:
            if not self.pool:
                self.pool = self.items[:]
                self.rng.shuffle(self.pool)
            item = self.pool.pop()
            if item not in picked:
                picked.append(item)
        return picked


def spread(rng, category, items, templates, per_item=1, key="x"):
    """Pair each item with `per_item` distinct templates.

    `items` are strings (filled into `{key}`) or dicts of template fields.
    `per_item` may be an int or a callable(index) -> int.
    """
    deck = Deck(rng, templates)
    out = []
    for i, item in enumerate(items):
        n = per_item(i) if callable(per_item) else per_item
        fields = item if isinstance(item, dict) else {key: item}
        for tpl in deck.draw(n):
            out.append(rec(category, fill(tpl, **fields)))
    return out


def with_inputs(rng, category, inputs, templates, per_item=1):
    """Pair each given input text with `per_item` distinct fixed instructions."""
    deck = Deck(rng, templates)
    out = []
    for i, text in enumerate(inputs):
        n = per_item(i) if callable(per_item) else per_item
        for tpl in deck.draw(n):
            out.append(rec(category, fill(tpl), text))
    return out


def one_or_two(i: int) -> int:
    """Alternate 1, 2, 1, 2 ... templates per item."""
    return 1 + (i % 2)


def code_block(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# ---------------------------------------------------------------------------
# open_qa: factual and explanatory questions
# ---------------------------------------------------------------------------

HOW_IT_WORKS_TEMPLATES = [
    "Explain how {x} works.",
    "How does {x} work?",
    "Describe, in simple terms, how {x} works.",
    "Give a short explanation of how {x} works.",
    "Can you explain the basic idea behind {x}?",
]
HOW_IT_WORKS = [
    "photosynthesis", "a refrigerator", "a vaccine", "the human immune system",
    "a solar panel", "GPS navigation", "a microwave oven", "a lithium-ion battery",
    "the stock market", "compound interest", "a credit score", "the water cycle",
    "a hydroelectric dam", "a search engine", "public-key encryption",
    "the human heart", "a hot air balloon", "an airplane wing",
    "noise-cancelling technology", "a 3D printer", "a thermostat", "carbon dating",
    "a nuclear power plant", "a touchscreen", "a wind turbine", "a heat pump",
    "the electoral college", "a barcode scanner", "a pressure cooker",
    "natural selection",
]

WHY_QUESTIONS = [
    "Why is the sky blue?",
    "Why do leaves change color in autumn?",
    "Why does Earth have seasons?",
    "Why does ice float on water?",
    "Why do cats purr?",
    "Why is the ocean salty?",
    "Why do onions make people cry when they are cut?",
    "Why do we yawn?",
    "Why does bread go stale?",
    "Why do airplanes leave white trails in the sky?",
    "Why do some people need glasses to see clearly?",
    "Why is sleep important for memory?",
    "Why does the Moon appear to change shape during the month?",
    "Why do many birds migrate in the winter?",
    "Why are metals good conductors of electricity?",
    "Why does popcorn pop?",
    "Why do we get goosebumps?",
    "Why is Venus hotter than Mercury even though it is farther from the Sun?",
    "Why do stars twinkle at night?",
    "Why do rivers often form curves and bends?",
    "What causes thunder?",
    "What causes earthquakes?",
    "How do bees make honey?",
    "How are rainbows formed?",
    "What is the capital of Australia?",
    "How long does it take light from the Sun to reach Earth?",
    "What are the three main states of matter?",
    "What do mitochondria do in a cell?",
    "How many bones are there in an adult human body?",
    "What is the largest desert in the world?",
    "Which planet in our solar system has the most moons?",
    "How do plants know which way is up?",
    "What makes a food organic?",
    "How do noise levels get measured in decibels?",
    "Why do we have time zones?",
    "What is the main function of the liver?",
    "How do submarines dive and come back to the surface?",
    "What causes the tides in the ocean?",
    "How did the Great Wall of China get built?",
    "What is the difference between a city and a town?",
    "Why do we need to rotate crops on farms?",
    "How do fish breathe underwater?",
    "What causes a rainbow to have different colors?",
    "What are the main functions of the United Nations?",
    "How do chameleons change color?",
]

HISTORY_TEMPLATES = [
    "Why was {x} important?",
    "What were the main effects of {x}?",
    "Give a short overview of {x}.",
    "What is the historical significance of {x}?",
    "What led to {x}?",
]
HISTORY_EVENTS = [
    "the French Revolution", "the Industrial Revolution", "the fall of the Berlin Wall",
    "the Apollo 11 moon landing", "the invention of the printing press",
    "the Black Death", "the Great Depression", "the American Civil War",
    "the Renaissance", "the signing of the Magna Carta",
    "the fall of the Western Roman Empire", "the Cuban Missile Crisis",
    "the construction of the Panama Canal", "the partition of India in 1947",
    "the Meiji Restoration in Japan", "the discovery of penicillin",
    "the Protestant Reformation", "the 1918 influenza pandemic",
    "the invention of the World Wide Web", "the abolition of the transatlantic slave trade",
]

PEOPLE_TEMPLATES = [
    "Who was {name}?",
    "What is {name} best known for?",
    "Describe the main contributions of {name} to {field}.",
    "Why is {name} considered important in the history of {field}?",
]
PEOPLE = [
    ("Marie Curie", "science"), ("Isaac Newton", "physics"),
    ("Ada Lovelace", "computing"), ("Leonardo da Vinci", "art"),
    ("Nelson Mandela", "South Africa"), ("Charles Darwin", "biology"),
    ("Florence Nightingale", "nursing"), ("Mahatma Gandhi", "India"),
    ("Galileo Galilei", "astronomy"), ("Rosalind Franklin", "genetics"),
    ("Alan Turing", "computer science"), ("Frida Kahlo", "painting"),
    ("Confucius", "philosophy"), ("Ibn Sina", "medicine"),
    ("Wangari Maathai", "environmental activism"), ("Johannes Gutenberg", "printing"),
    ("Nikola Tesla", "electrical engineering"), ("Jane Austen", "English literature"),
    ("Hypatia of Alexandria", "mathematics"), ("Louis Pasteur", "microbiology"),
]

COMPARE_TEMPLATES = [
    "What is the difference between {a} and {b}?",
    "How does {a} differ from {b}?",
    "Compare {a} and {b} in a few sentences.",
    "Explain the main differences between {a} and {b}.",
]
COMPARE_PAIRS = [
    ("a virus", "a bacterium"), ("weather", "climate"), ("a comet", "an asteroid"),
    ("an alligator", "a crocodile"), ("a democracy", "a monarchy"),
    ("stocks", "bonds"), ("RAM", "hard drive storage"), ("an ocean", "a sea"),
    ("a simile", "a metaphor"), ("mitosis", "meiosis"), ("speed", "velocity"),
    ("a hurricane", "a tornado"), ("baking soda", "baking powder"),
    ("latitude", "longitude"), ("a debit card", "a credit card"),
    ("renewable energy", "non-renewable energy"), ("an LED bulb", "an incandescent bulb"),
    ("a lake", "a pond"), ("DNA", "RNA"), ("HTTP", "HTTPS"),
    ("an epidemic", "a pandemic"), ("a frog", "a toad"), ("a violin", "a viola"),
    ("a novel", "a short story"),
]


def make_open_qa(rng):
    cat = "open_qa"
    out = spread(rng, cat, HOW_IT_WORKS, HOW_IT_WORKS_TEMPLATES)
    out += [rec(cat, q) for q in WHY_QUESTIONS]
    out += spread(rng, cat, HISTORY_EVENTS, HISTORY_TEMPLATES)
    out += spread(rng, cat, [{"name": n, "field": f} for n, f in PEOPLE], PEOPLE_TEMPLATES)
    out += spread(rng, cat, [{"a": a, "b": b} for a, b in COMPARE_PAIRS], COMPARE_TEMPLATES)
    return out


# ---------------------------------------------------------------------------
# definition: technical terms (with a field) and everyday vocabulary
# ---------------------------------------------------------------------------

TERM_TEMPLATES = [
    "Define the term '{t}'.",
    "What does the term '{t}' mean in {f}?",
    "Explain the concept of '{t}' in {f} in simple terms.",
    "Give a short definition of '{t}' and an example.",
    "In {f}, what is meant by '{t}'?",
    "How would you explain '{t}' to a beginner?",
    "Provide a one-sentence definition of '{t}' as it is used in {f}.",
]
TERMS = [
    ("algorithm", "computer science"), ("inflation", "economics"), ("osmosis", "biology"),
    ("entropy", "physics"), ("opportunity cost", "economics"), ("metaphor", "literature"),
    ("ecosystem", "ecology"), ("catalyst", "chemistry"), ("hypothesis", "science"),
    ("supply and demand", "economics"), ("irony", "literature"),
    ("machine learning", "computer science"), ("gross domestic product", "economics"),
    ("plate tectonics", "geology"), ("mutation", "genetics"), ("alliteration", "poetry"),
    ("cognitive dissonance", "psychology"), ("placebo effect", "medicine"),
    ("bandwidth", "networking"), ("API", "software development"), ("recursion", "programming"),
    ("biodiversity", "ecology"), ("inertia", "physics"), ("diversification", "investing"),
    ("sustainability", "environmental science"), ("gerrymandering", "politics"),
    ("satire", "literature"), ("antibody", "immunology"),
    ("carbon footprint", "environmental science"), ("cloud computing", "technology"),
    ("blockchain", "technology"), ("phishing", "cybersecurity"), ("latency", "networking"),
    ("neuron", "neuroscience"), ("homeostasis", "biology"), ("oxidation", "chemistry"),
    ("median", "statistics"), ("standard deviation", "statistics"),
    ("correlation", "statistics"), ("prime number", "mathematics"),
    ("derivative", "calculus"), ("allele", "genetics"), ("symbiosis", "biology"),
    ("monopoly", "economics"), ("tariff", "international trade"), ("liquidity", "finance"),
    ("depreciation", "accounting"), ("mortgage", "personal finance"),
    ("onomatopoeia", "language"), ("protagonist", "storytelling"),
    ("foreshadowing", "storytelling"), ("impressionism", "art history"),
    ("tempo", "music"), ("syncopation", "music"), ("erosion", "geology"),
    ("greenhouse effect", "climate science"), ("habitat", "ecology"),
    ("metabolism", "biology"), ("stakeholder", "business"), ("brand equity", "marketing"),
    ("agile development", "software engineering"), ("version control", "software development"),
    ("firewall", "computer networking"), ("sonnet", "poetry"), ("paradox", "logic"),
    ("logical fallacy", "critical thinking"), ("deductive reasoning", "logic"),
    ("empiricism", "philosophy"), ("utilitarianism", "ethics"), ("quorum", "meetings"),
    ("due diligence", "business"), ("herd immunity", "public health"),
    ("incubation period", "medicine"), ("compound interest", "finance"),
    ("photosynthesis", "biology"),
]

WORD_TEMPLATES = [
    "What does the word '{t}' mean?",
    "Define '{t}' and use it in a sentence.",
    "Give the meaning of '{t}' and one synonym.",
    "Explain the word '{t}' in simple terms.",
    "What is the definition of '{t}'? Include an example sentence.",
]
WORDS = [
    "ephemeral", "ubiquitous", "serendipity", "resilient", "pragmatic", "meticulous",
    "ambiguous", "benevolent", "candid", "diligent", "eloquent", "frugal", "gregarious",
    "hinder", "impeccable", "juxtapose", "lethargic", "mundane", "nostalgia", "obsolete",
    "paradigm", "quintessential", "reluctant", "scrutinize", "tenacious", "verbose",
    "whimsical", "zealous", "altruism", "catharsis", "dichotomy", "euphemism", "gullible",
    "hypothetical", "inevitable", "jargon", "lucid", "mitigate", "nuance", "ostracize",
    "procrastinate", "redundant", "sporadic", "tangible", "versatile", "wanderlust",
]


def make_definition(rng):
    cat = "definition"
    out = spread(rng, cat, [{"t": t, "f": f} for t, f in TERMS], TERM_TEMPLATES)
    out += spread(rng, cat, WORDS, WORD_TEMPLATES, key="t")
    return out


# ---------------------------------------------------------------------------
# brainstorm: lists of ideas and tips
# ---------------------------------------------------------------------------

NUMBER_WORDS = ["three", "four", "five", "six"]

GOAL_TEMPLATES = [
    "List {k} ways to {g}.",
    "What are some creative ways to {g}?",
    "Suggest {k} practical ways to {g}.",
    "Brainstorm some ideas for how to {g}.",
    "Come up with a few strategies to {g}.",
    "Give me a list of ideas to {g}.",
]
BRAINSTORM_GOALS = [
    "reduce food waste at home", "save water in the garden",
    "make a small apartment feel bigger", "keep kids entertained on a rainy day",
    "reduce plastic use in the kitchen", "celebrate a friend's birthday on a budget",
    "make a long commute more enjoyable", "encourage more people to use the public library",
    "welcome a new employee to a team", "raise money for a school trip",
    "make a neighborhood more bike-friendly", "use up leftover rice",
    "decorate a classroom for spring", "reduce screen time for teenagers",
    "attract birds to a backyard", "make team meetings more productive",
    "reuse old glass jars", "get more people to recycle at work",
    "make a website more accessible", "stay active during the winter",
    "learn new vocabulary in a foreign language", "promote a local farmers' market",
    "make a road trip more fun", "help elderly neighbors during a heat wave",
    "lower the monthly electricity bill", "keep garden pests away without chemicals",
    "entertain guests at a small dinner party", "make exam revision less stressful",
    "organize a cluttered garage", "improve the atmosphere of a small café",
    "get children interested in science", "make a presentation more engaging",
    "celebrate Earth Day at school", "increase attendance at a community event",
    "reduce noise in an open-plan office", "spend a free afternoon in a new city",
    "keep houseplants alive while on vacation",
    "build a sense of community in an apartment building",
    "make healthy lunches more appealing to kids", "repurpose old t-shirts",
    "improve communication in a remote team", "make a morning routine more efficient",
    "save money on groceries", "make a personal blog stand out",
    "cut down on paper use in an office",
]

IDEA_TEMPLATES = [
    "List {k} {n}.",
    "Brainstorm a list of {n}.",
    "Come up with {k} {n}.",
    "Suggest several {n}.",
    "Generate a list of {n}.",
]
BRAINSTORM_NOUNS = [
    "names for a new neighborhood bakery", "names for a pet goldfish",
    "themes for a school dance", "topics for a middle school science fair project",
    "questions a candidate could ask at the end of a job interview",
    "ice-breaker questions for a team meeting",
    "gift ideas for a coworker who loves gardening", "fun activities for a family reunion",
    "side dishes to serve with grilled fish", "titles for a mystery novel set in a lighthouse",
    "blog post ideas for a travel website", "vegetarian dinner ideas for a busy weeknight",
    "indoor hobbies for people who live alone", "features for a smart water bottle",
    "things to pack for a weekend camping trip",
    "unusual uses for a paper clip", "small business ideas that can be run from home",
    "conversation starters for a first date", "snacks for a board game night",
    "names for a podcast about world history",
    "activities for a company team-building day", "outdoor games for a children's party",
    "ideas for a short film about friendship", "things to do in a city when it rains",
    "app ideas that would help college students",
    "Halloween costumes made from household items", "low-cost date ideas",
    "reasons to learn a second language", "questions to ask a museum tour guide",
    "healthy breakfasts that take under five minutes to make",
    "mobile game ideas for practicing math", "hashtags for an eco-friendly clothing brand",
    "research questions about urban gardening", "features to include in a recipe app",
    "themes for a community photography exhibition", "names for a weekend hiking club",
    "possible reasons a car might not start in the morning",
    "topics for a high school debate", "ways to describe the color blue without naming it",
    "ideas for a fundraiser for an animal shelter",
]


def make_brainstorm(rng):
    cat = "brainstorm"
    goals = [{"g": g, "k": rng.choice(NUMBER_WORDS)} for g in BRAINSTORM_GOALS]
    nouns = [{"n": n, "k": rng.choice(NUMBER_WORDS)} for n in BRAINSTORM_NOUNS]
    out = spread(rng, cat, goals, GOAL_TEMPLATES, per_item=one_or_two)
    out += spread(rng, cat, nouns, IDEA_TEMPLATES)
    return out


# ---------------------------------------------------------------------------
# advice: first-person "how can I" goals and third-person situations
# ---------------------------------------------------------------------------

ADVICE_GOAL_TEMPLATES = [
    "How can I {g}?",
    "What are some tips to help me {g}?",
    "Give me advice on how to {g}.",
    "What is the best way to {g}?",
    "I'd like to {g}. Any advice?",
    "Can you give me a few practical tips to {g}?",
]
ADVICE_GOALS = [
    "improve my sleep schedule", "stop procrastinating on important tasks",
    "prepare for a job interview", "ask my manager for a raise",
    "make friends after moving to a new city", "start running as a complete beginner",
    "stick to a monthly budget", "deal with a difficult coworker",
    "become a better public speaker", "keep a conversation going with someone I just met",
    "handle stress during exam season", "start saving for retirement in my twenties",
    "write a strong cover letter", "learn to cook healthy meals on a budget",
    "negotiate the price of a used car", "spend less time on social media",
    "give constructive feedback to a colleague", "keep my houseplants healthy",
    "balance work and family life", "prepare for my first marathon",
    "start learning the guitar as an adult", "get better at remembering people's names",
    "politely decline an invitation", "recover after a bad day at work",
    "choose a good laptop for university", "organize my email inbox",
    "make a good first impression at a new job", "teach my child to ride a bike",
    "stay motivated while working from home", "prepare for a long-haul flight",
    "set New Year's resolutions that I will actually keep",
    "apologize to a friend I hurt", "ask my landlord to make repairs",
    "feel more confident speaking a foreign language", "choose a major in college",
    "get my toddler to eat more vegetables", "pack for a week-long trip with only a carry-on bag",
    "protect my online accounts from hackers", "start a vegetable garden on a balcony",
    "deal with jet lag", "handle criticism without getting defensive",
    "start a journaling habit", "care for a new puppy", "read more books this year",
    "keep my car in good condition", "make my resume stand out",
    "manage my time better at university", "calm my nerves before a big presentation",
    "cut down on sugar", "get back into a routine after a long holiday",
]

ADVICE_SITUATION_TEMPLATES = [
    "What advice would you give to someone who {s}?",
    "What would you say to a friend who {s}?",
    "Offer some practical advice for a person who {s}.",
    "Give three pieces of advice to someone who {s}.",
]
ADVICE_SITUATIONS = [
    "is starting their first full-time job", "has just graduated and feels lost",
    "wants to change careers at 40", "is nervous about living alone for the first time",
    "has too many commitments and feels burned out",
    "is moving to a country where they don't speak the language",
    "keeps forgetting important deadlines",
    "wants to get back into exercise after an injury",
    "is struggling to save money on a small salary", "is caring for an aging parent",
    "received a job offer with a lower salary than expected",
    "was just rejected by their first-choice university",
    "wants to start a small online business", "feels lonely after their friends moved away",
    "is about to become a manager for the first time", "is thinking about adopting a cat",
    "has trouble falling asleep at night", "is learning to drive",
    "is about to rent their first apartment",
    "keeps arguing with a roommate about chores", "wants to quit smoking",
    "is planning a wedding on a tight budget", "is anxious about visiting the dentist",
    "wants to learn programming in their free time",
    "is going on a solo trip for the first time",
    "has been asked to give a toast at a wedding",
    "is unsure whether to accept a job in another city",
    "spends too much money on takeout", "is training for their first 5K race",
    "is returning to work after parental leave",
    "wants to ask for more flexible working hours",
]


def make_advice(rng):
    cat = "advice"
    out = spread(rng, cat, ADVICE_GOALS, ADVICE_GOAL_TEMPLATES, per_item=one_or_two, key="g")
    out += spread(rng, cat, ADVICE_SITUATIONS, ADVICE_SITUATION_TEMPLATES, key="s")
    return out


# ---------------------------------------------------------------------------
# creative: poems, stories, slogans, riddles, dialogues
# ---------------------------------------------------------------------------

POEM_TEMPLATES = [
    "Write a short poem about {x}.",
    "Write a haiku about {x}.",
    "Compose a four-line rhyming poem about {x}.",
    "Write a limerick about {x}.",
    "Write a free-verse poem describing {x}.",
]
POEM_TOPICS = [
    "the first snow of winter", "a lighthouse at night", "a cup of morning coffee",
    "an old oak tree", "the city at dawn", "a lost umbrella", "the ocean tide",
    "a rainy Sunday afternoon", "friendship", "a cat sleeping in the sun",
    "the smell of fresh bread", "autumn leaves", "the night sky in the desert",
    "a long train journey", "a grandmother's kitchen", "the last day of summer",
    "a busy beehive", "an overdue library book", "the moon over a quiet lake",
    "a mountain hike", "a summer thunderstorm", "a kite on a windy day",
    "the first day of school", "a street musician", "spring rain", "a firefly",
    "a small sailboat", "an empty playground", "coming home", "hope",
    "the passing of time", "a garden in full bloom", "a snowy mountain village",
    "a bicycle ride at sunset", "a quiet bookshop",
]

STORY_TEMPLATES = [
    "Write a short story about {x}.",
    "Write the opening paragraph of a story about {x}.",
    "Tell a very short story about {x}.",
    "Write a 100-word story about {x}.",
    "Write a short bedtime story for children about {x}.",
]
STORY_PREMISES = [
    "a robot who learns to paint", "a girl who finds a map in her grandfather's attic",
    "a dragon who is afraid of heights", "a detective who solves cases by smell alone",
    "a town where it never stops raining", "a dog who gets lost at a farmers' market",
    "two strangers stuck in an elevator", "a baker who discovers a magical recipe",
    "a lighthouse keeper who receives a mysterious letter",
    "an astronaut returning to Earth after ten years", "a child who can talk to trees",
    "a singer who loses her voice before a big concert",
    "a time traveler who always arrives one day too late",
    "a shy turtle who enters a race", "a village that wakes up with no colors",
    "a bicycle that remembers every ride", "a young chef cooking for a king",
    "a squirrel planning a daring heist", "a message in a bottle",
    "a library that opens only at midnight", "a snowman who wants to see summer",
    "an old man who plants a tree every year",
    "a pair of socks that keep getting separated",
    "a student who invents a new holiday", "a ghost who is afraid of people",
    "a fisherman who catches a fallen star", "a cat who becomes mayor of a small town",
    "an inventor whose machine only works on Tuesdays",
]

SLOGAN_TEMPLATES = [
    "Create a catchy slogan for {x}.",
    "Come up with a tagline for {x}.",
    "Write a short advertising slogan for {x}.",
    "Suggest a memorable motto for {x}.",
]
SLOGAN_SUBJECTS = [
    "an eco-friendly water bottle", "a neighborhood bakery", "a bike repair shop",
    "a language-learning app", "a dog-walking service", "a recycling campaign at school",
    "a solar-powered phone charger", "the local public library", "a vegan restaurant",
    "a fitness studio for seniors", "an online secondhand bookstore",
    "a plant-based ice cream brand", "a summer reading challenge", "a road-safety campaign",
    "a coffee shop near a university", "a home cleaning service",
    "a charity run for animal shelters", "a travel agency that specializes in train trips",
    "a handmade soap company", "a coding bootcamp for beginners",
]

WORD_POEM_INPUTS = [
    "river, lantern, whisper, gold", "coffee, rain, window, Monday",
    "seed, patience, sunlight, bloom", "train, ticket, goodbye, fog",
    "snow, silence, footprints, home", "market, lemons, laughter, noon",
    "stars, compass, ocean, map", "clock, dust, attic, letter",
]
WORD_POEM_TEMPLATES = [
    "Write a short poem that includes all of the following words.",
    "Use the following words to write a four-line poem.",
]

STORY_OPENINGS = [
    "The last bus of the night stopped, even though no one had pressed the bell.",
    "Everyone in the village knew not to open the blue door, until the day it opened by itself.",
    "When I woke up, my cat was sitting on my chest holding a tiny envelope.",
    "The robot had been cleaning the same museum for fifty years when a visitor finally said hello.",
    "It was the first day of summer vacation, and the sky had turned green.",
    "My grandmother handed me an old key and said, 'You'll know what it opens when you see it.'",
    "The map showed an island that did not appear on any other chart.",
    "At exactly 3:07 pm, every phone in the city rang at once.",
    "The new student sat down, opened her notebook, and the pages began to glow.",
    "Nobody had climbed the lighthouse stairs in years, so the footprints in the dust were a surprise.",
]
STORY_OPENING_TEMPLATES = [
    "Continue the story that begins with the following sentence.",
    "Write the next paragraph of a story that starts like this.",
    "Use the sentence below as the opening line of a short story.",
]

DIALOGUE_TEMPLATES = [
    "Write a short dialogue between {a} about {c}.",
    "Write a brief conversation between {a} about {c}.",
]
DIALOGUES = [
    ("a customer and a barista", "a new seasonal drink"),
    ("a teacher and a student", "a late homework assignment"),
    ("two astronauts", "what they miss most about Earth"),
    ("a dog and a cat", "who gets the sunny spot on the sofa"),
    ("a job applicant and an interviewer", "the applicant's biggest weakness"),
    ("a tourist and a local", "the best place to eat in town"),
    ("a grandparent and a grandchild", "how phones have changed"),
    ("two friends", "planning a surprise party"),
]

RIDDLE_TEMPLATES = [
    "Write a riddle whose answer is {x}.",
    "Create a short riddle for children where the answer is {x}.",
]
RIDDLE_ANSWERS = ["a shadow", "an echo", "a clock", "a candle", "a map", "a piano",
                  "a cloud", "a key"]

MISC_CREATIVE = [
    ("Write a motivational quote about {x}.",
     ["perseverance", "learning from mistakes", "teamwork", "starting over", "curiosity"]),
    ("Write a short product description for {x}.",
     ["a handmade ceramic mug", "a pair of wireless earbuds", "a reusable lunch box",
      "a smart bird feeder"]),
    ("Write a tweet announcing {x}.",
     ["the opening of a new community pool", "a charity bake sale this Saturday",
      "a new flavor of ice cream", "a free coding workshop for teens"]),
]


def make_creative(rng):
    cat = "creative"
    out = spread(rng, cat, POEM_TOPICS, POEM_TEMPLATES)
    out += spread(rng, cat, STORY_PREMISES, STORY_TEMPLATES)
    out += spread(rng, cat, SLOGAN_SUBJECTS, SLOGAN_TEMPLATES)
    out += with_inputs(rng, cat, WORD_POEM_INPUTS, WORD_POEM_TEMPLATES)
    out += with_inputs(rng, cat, STORY_OPENINGS, STORY_OPENING_TEMPLATES)
    out += spread(rng, cat, [{"a": a, "c": c} for a, c in DIALOGUES], DIALOGUE_TEMPLATES)
    out += spread(rng, cat, RIDDLE_ANSWERS, RIDDLE_TEMPLATES)
    for tpl, subjects in MISC_CREATIVE:
        out += [rec(cat, fill(tpl, x=s)) for s in subjects]
    return out


# ---------------------------------------------------------------------------
# math: arithmetic, small data sets, equations and word problems
# ---------------------------------------------------------------------------

def _avg_triple(r):
    a, b = r.randint(10, 60), r.randint(10, 60)
    c = r.randint(10, 60)
    c += (-(a + b + c)) % 3  # make the average a whole number
    return {"a": a, "b": b, "c": c}


ARITHMETIC = [
    ("What is {a} multiplied by {b}?", lambda r: {"a": r.randint(12, 99), "b": r.randint(3, 19)}),
    ("Calculate {a} + {b}.", lambda r: {"a": r.randint(100, 999), "b": r.randint(100, 999)}),
    ("What is {a} minus {b}?", lambda r: (lambda a: {"a": a, "b": r.randint(50, a - 1)})(r.randint(200, 999))),
    ("What is {a} divided by {b}?", lambda r: (lambda b: {"a": b * r.randint(6, 40), "b": b})(r.randint(3, 12))),
    ("What is {p}% of {n}?", lambda r: {"p": r.choice([10, 15, 20, 25, 40, 75]), "n": r.choice([48, 80, 120, 200, 360, 640])}),
    ("What is the square root of {s}?", lambda r: {"s": r.randint(4, 20) ** 2}),
    ("What is {a} squared?", lambda r: {"a": r.randint(11, 30)}),
    ("Convert {f} degrees Fahrenheit to Celsius.", lambda r: {"f": r.choice([32, 41, 50, 59, 68, 77, 86, 95, 104, 212])}),
    ("How many minutes are there in {h} hours?", lambda r: {"h": r.randint(2, 12)}),
    ("Is {n} a prime number? Explain why or why not.", lambda r: {"n": r.choice([21, 29, 37, 51, 57, 61, 87, 91, 97])}),
    ("What is the least common multiple of {a} and {b}?", lambda r: {"a": r.randint(4, 9), "b": r.randint(10, 15)}),
    ("Round {x} to the nearest tenth.", lambda r: {"x": f"{r.randint(100, 9999) / 100 + 0.005:.3f}"}),
]

WORD_PROBLEMS = [
    ("A store sells notebooks for ${p} each. How much do {n} notebooks cost?",
     lambda r: {"p": r.randint(2, 9), "n": r.randint(3, 15)}),
    ("A train travels at {s} km per hour. How far does it go in {h} hours?",
     lambda r: {"s": r.choice([60, 75, 80, 90, 120]), "h": r.randint(2, 6)}),
    ("{name} had {a} stickers and gave {b} of them to classmates. How many stickers are left?",
     lambda r: (lambda a: {"name": r.choice(["Sara", "Omar", "Lucia", "Ken", "Priya"]), "a": a,
                           "b": r.randint(5, a - 5)})(r.randint(30, 90))),
    ("A rectangle is {w} cm wide and {l} cm long. What is its area?",
     lambda r: {"w": r.randint(3, 15), "l": r.randint(16, 40)}),
    ("A recipe uses {g} grams of flour for one cake. How much flour is needed for {n} cakes?",
     lambda r: {"g": r.choice([150, 200, 225, 250, 300]), "n": r.randint(3, 8)}),
    ("A jacket costs ${p} and is on sale for {d}% off. What is the sale price?",
     lambda r: {"p": r.choice([40, 60, 80, 120, 150]), "d": r.choice([10, 20, 25, 30, 50])}),
    ("Tom reads {p} pages a day. How many days will it take him to finish a {t}-page book?",
     lambda r: (lambda p: {"p": p, "t": p * r.randint(8, 20)})(r.choice([12, 15, 20, 25, 30]))),
    ("A class has {b} boys and {g} girls. What fraction of the class are girls?",
     lambda r: {"b": r.randint(8, 16), "g": r.randint(8, 16)}),
    ("A car uses {l} liters of fuel per 100 km. How much fuel does it need for a {d} km trip?",
     lambda r: {"l": r.randint(5, 9), "d": r.choice([200, 250, 300, 450, 500])}),
    ("The temperature was {t} degrees Celsius in the morning and rose by {u} degrees by noon. What was the temperature at noon?",
     lambda r: {"t": r.randint(-6, 15), "u": r.randint(3, 12)}),
    ("A square garden has sides that are {s} meters long. What is the perimeter of the garden?",
     lambda r: {"s": r.randint(4, 25)}),
    ("A group of {n} friends splits a restaurant bill of ${b} equally. How much does each person pay?",
     lambda r: (lambda n: {"n": n, "b": n * r.randint(12, 30)})(r.randint(3, 8))),
    ("A bus leaves at {h}:{m:02d} am and the trip takes {d} minutes. At what time does it arrive?",
     lambda r: {"h": r.randint(6, 10), "m": r.choice([0, 15, 30, 45]), "d": r.choice([25, 40, 55, 75, 90])}),
    ("What is the simple interest on ${p} at {i}% per year for {y} years?",
     lambda r: {"p": r.choice([500, 1000, 2000, 2500, 4000]), "i": r.randint(2, 6), "y": r.randint(2, 5)}),
    ("A water tank holds {c} liters and is {f}% full. How many liters of water are in the tank?",
     lambda r: {"c": r.choice([200, 400, 500, 800, 1000]), "f": r.choice([25, 40, 60, 75, 90])}),
    ("A cyclist rides {d} km in {t} hours. What is her average speed?",
     lambda r: (lambda t: {"t": t, "d": t * r.randint(12, 25)})(r.randint(2, 5))),
    ("A hall has {n} rows of chairs with {c} chairs in each row. How many chairs are there in total?",
     lambda r: {"n": r.randint(8, 25), "c": r.randint(10, 20)}),
    ("A phone battery loses {p}% of its charge every hour. Starting from a full charge, how much is left after {h} hours?",
     lambda r: {"p": r.choice([5, 8, 10, 12]), "h": r.randint(2, 6)}),
    ("Maria earns ${w} per hour and works {h} hours a week. How much does she earn in a week?",
     lambda r: {"w": r.randint(12, 25), "h": r.choice([20, 25, 30, 35, 40])}),
    ("A pizza is cut into {s} slices. If {e} slices are eaten, what percentage of the pizza is left?",
     lambda r: (lambda s: {"s": s, "e": r.randint(1, s - 1)})(r.choice([8, 10]))),
    ("The perimeter of a square is {p} cm. How long is each side?",
     lambda r: {"p": 4 * r.randint(3, 30)}),
    ("A movie starts at 7:15 pm and lasts {m} minutes. What time does it end?",
     lambda r: {"m": r.randint(85, 150)}),
    ("What is the average of {a}, {b}, and {c}?", _avg_triple),
    ("A farmer has {c} chickens and {k} cows. How many legs do the animals have altogether?",
     lambda r: {"c": r.randint(5, 30), "k": r.randint(2, 12)}),
    ("A jar contains {a} red marbles and {b} blue marbles. If you pick one marble at random, what is the probability that it is red?",
     lambda r: {"a": r.randint(2, 12), "b": r.randint(2, 12)}),
    ("A school orders {b} boxes of pencils with {p} pencils in each box. If {u} pencils are handed out, how many are left?",
     lambda r: (lambda b, p: {"b": b, "p": p, "u": r.randint(10, b * p - 5)})(r.randint(4, 12), r.choice([10, 12, 20, 24]))),
    ("Lena saves ${s} every week. How many weeks will it take her to save ${t}?",
     lambda r: (lambda s: {"s": s, "t": s * r.randint(6, 30)})(r.choice([5, 10, 15, 20, 25]))),
]
WORD_PROBLEM_INPUT_TEMPLATES = [
    "Solve the following word problem.",
    "Solve this problem and show your work.",
    "Answer the math question below step by step.",
    "Work out the answer to the following problem and explain your reasoning.",
]

EXPRESSIONS = ["3(x + 4) - 2x", "2a + 5b - a + 3b", "4(y - 2) + 3y", "(6x + 9) / 3",
               "5m - 2(m - 3)"]


def _number_list(r, n_lo=4, n_hi=6, lo=1, hi=99):
    return ", ".join(str(r.randint(lo, hi)) for _ in range(r.randint(n_lo, n_hi)))


def _equation(r):
    a, x, b = r.randint(2, 9), r.randint(-5, 12), r.choice([n for n in range(-20, 21) if n])
    sign = "+" if b > 0 else "-"
    return f"{a}x {sign} {abs(b)} = {a * x + b}"


def make_math(rng):
    cat = "math"
    out = []
    for tpl, gen in ARITHMETIC:  # two instances of each
        for _ in range(2):
            out.append(rec(cat, fill(tpl, **gen(rng))))
    deck = Deck(rng, WORD_PROBLEM_INPUT_TEMPLATES)
    for tpl, gen in WORD_PROBLEMS:  # one as the instruction, one as the input
        first = fill(tpl, **gen(rng))
        second = first
        while second == first:
            second = fill(tpl, **gen(rng))
        out.append(rec(cat, first))
        out.append(rec(cat, fill(deck.draw()[0]), second))
    # Small data sets and expressions given as input.
    data_tasks = [
        (["Find the average of the following numbers.", "Calculate the mean of these numbers."],
         [_number_list(rng) for _ in range(5)]),
        (["Add up the following numbers."], [_number_list(rng, lo=10, hi=500) for _ in range(3)]),
        (["Arrange these numbers from smallest to largest."],
         [", ".join(f"{rng.randint(-60, 60) / rng.choice([1, 2, 4]):g}" for _ in range(6))
          for _ in range(3)]),
        (["Solve for x.", "Solve the following equation for x.",
          "Find the value of x in the equation below."], [_equation(rng) for _ in range(8)]),
        (["Convert the following fraction to a decimal."], ["3/8", "7/20", "5/16"]),
        (["Simplify this fraction to its lowest terms."], ["18/24", "45/60", "28/49"]),
        (["Simplify the following expression."], EXPRESSIONS),
        (["Find the median and the range of the following data set."],
         [_number_list(rng, 5, 7) for _ in range(3)]),
    ]
    for templates, inputs in data_tasks:
        out += with_inputs(rng, cat, inputs, templates)
    return out


# ---------------------------------------------------------------------------
# code: write small functions, explain/fix snippets, SQL, concepts
# ---------------------------------------------------------------------------

FUNCTION_TEMPLATES = [
    "Write a Python function that {x}.",
    "Create a Python function that {x}.",
    "Write a JavaScript function that {x}.",
    "Implement a function in Python that {x}.",
    "How would you write a function that {x}? Show the code.",
    "Write a short, well-commented Python function that {x}.",
]
FUNCTION_TASKS = [
    "checks whether a string is a palindrome", "returns the largest number in a list",
    "counts the vowels in a string", "reverses a list without using built-in reverse functions",
    "converts a temperature from Celsius to Fahrenheit", "checks whether a number is prime",
    "returns the factorial of a number", "removes duplicates from a list while keeping the order",
    "returns the nth Fibonacci number", "counts how many times each word appears in a sentence",
    "checks whether two strings are anagrams", "returns the second smallest number in a list",
    "capitalizes the first letter of every word in a sentence",
    "merges two sorted lists into one sorted list",
    "calculates the average of a list of numbers", "finds the longest word in a sentence",
    "converts a number of seconds into hours, minutes, and seconds",
    "returns only the even numbers from a list", "checks whether a year is a leap year",
    "flattens a list of lists", "computes the greatest common divisor of two numbers",
    "checks that a password has at least eight characters and one digit",
    "returns the sum of the digits of an integer",
    "finds the index of an item in a list or returns -1 if it is missing",
    "generates a random password of a given length",
    "counts the number of lines in a text file",
    "returns the number of days between two dates",
    "sorts a list of dictionaries by a given key",
    "checks whether a string contains only digits", "rotates a list by k positions",
    "converts a binary string to an integer",
    "prints the multiplication table for a given number",
    "checks whether the parentheses in a string are balanced",
    "returns the most common character in a string",
    "splits a list into chunks of a given size",
]

SNIPPET_TEMPLATES = {
    "explain": ["Explain what the following code does.",
                "Describe in plain English what this code does.",
                "Add helpful comments to the following code.",
                "What is the purpose of this code?"],
    "output": ["What will the following code print?",
               "What is the output of this code snippet? Explain why."],
    "bug": ["Find and fix the bug in the following code.",
            "This code does not work as expected. Explain the problem and correct it."],
    "loop": ["Rewrite the following loop as a list comprehension."],
    "complexity": ["What is the time complexity of the following function, and how could it be improved?"],
}
SNIPPETS = [
    (["explain"], """
        def mystery(nums):
            total = 0
            for n in nums:
                if n % 2 == 0:
                    total += n
            return total
     """),
    (["output", "explain"], """
        for i in range(1, 6):
            print(i * i)
     """),
    (["bug"], """
        def average(values):
            return sum(values) / len(value)
     """),
    (["bug"], """
        def is_even(n):
            if n % 2 = 0:
                return True
            return False
     """),
    (["output"], """
        words = ["apple", "kiwi", "banana"]
        lengths = {w: len(w) for w in words}
        print(lengths)
     """),
    (["output", "explain"], """
        function greet(name) {
          return `Hello, ${name}!`;
        }
        console.log(greet("Sam"));
     """),
    (["loop", "explain"], """
        squares = []
        for x in range(10):
            if x % 3 == 0:
                squares.append(x ** 2)
     """),
    (["loop"], """
        result = []
        for word in sentence.split():
            result.append(word.upper())
     """),
    (["bug"], """
        def last_item(items):
            return items[len(items)]
     """),
    (["explain", "complexity"], """
        def count_chars(text):
            counts = {}
            for ch in text:
                counts[ch] = counts.get(ch, 0) + 1
            return counts
     """),
    (["explain"], """
        SELECT department, COUNT(*) AS staff
        FROM employees
        GROUP BY department
        HAVING COUNT(*) > 10;
     """),
    (["complexity", "explain"], """
        def find_pair(items, target):
            for i, a in enumerate(items):
                for j, b in enumerate(items):
                    if i != j and a + b == target:
                        return i, j
            return None
     """),
    (["bug"], """
        i = 0
        while i < 10:
            print(i)
     """),
    (["output"], """
        const evens = [1, 2, 3, 4, 5, 6].filter(n => n % 2 === 0);
        console.log(evens);
     """),
    (["output"], """
        x = [3, 1, 2]
        y = x
        y.append(4)
        print(x)
     """),
    (["bug", "explain"], """
        def add_item(item, basket=[]):
            basket.append(item)
            return basket
     """),
    (["output"], """
        print("Hello" * 3)
        print(len("Hello" * 3))
     """),
    (["bug"], """
        def greet(name):
            print("Hello, " + name + "! You are " + 30 + " years old.")
     """),
]

SQL_TASKS = [
    ("Table employees(id, name, department, salary, hire_date)", [
        "Write a SQL query that returns the names of all employees in the Sales department.",
        "Write a SQL query to find the average salary in each department.",
        "Write a SQL query that lists the five most recently hired employees.",
    ]),
    ("Table orders(order_id, customer_id, order_date, total_amount)", [
        "Write a SQL query to find the total amount spent by each customer.",
        "Write a SQL query that counts how many orders were placed in 2023.",
    ]),
    ("Tables: students(id, name, grade), enrollments(student_id, course_name)", [
        "Write a SQL query that lists each student's name together with the courses they take.",
        "Write a SQL query to find students who are not enrolled in any course.",
    ]),
    ("Table products(id, name, category, price, stock)", [
        "Write a SQL query that returns all products with fewer than 10 items in stock.",
        "Write a SQL query to find the most expensive product in each category.",
    ]),
]

CODE_CONCEPTS = [
    "What is the difference between a list and a tuple in Python?",
    "Explain what a for loop is to someone who has never programmed.",
    "What is recursion? Give a short example in Python.",
    "What does the return statement do in a Python function?",
    "Explain the difference between '==' and 'is' in Python.",
    "What is a variable in programming?",
    "Why is it useful to write unit tests for your code?",
    "What is the difference between a compiled language and an interpreted language?",
    "Explain what an API is using a simple analogy.",
    "What is version control, and why do programmers use Git?",
    "What is the difference between a while loop and a for loop?",
    "Explain what a dictionary is in Python and when you would use one.",
    "What does it mean for a function to have a side effect?",
    "Why does indentation matter in Python?",
]


def make_code(rng):
    cat = "code"
    out = spread(rng, cat, FUNCTION_TASKS, FUNCTION_TEMPLATES, per_item=one_or_two)
    for tags, snippet in SNIPPETS:
        options = [t for tag in tags for t in SNIPPET_TEMPLATES[tag]]
        for tpl in rng.sample(options, min(2, len(options))):
            out.append(rec(cat, fill(tpl), code_block(snippet)))
    for schema, tasks in SQL_TASKS:
        out += [rec(cat, fill(task), schema) for task in tasks]
    out += [rec(cat, q) for q in CODE_CONCEPTS]
    return out


# ---------------------------------------------------------------------------
# classification: each group = (instruction templates, inputs)
# ---------------------------------------------------------------------------

CLASSIFICATION_GROUPS = [
    # Sentiment of reviews.
    ([
        "Classify the sentiment of the following review as positive, negative, or neutral.",
        "Is the sentiment of this customer review positive, negative, or mixed?",
        "Determine whether the following feedback is positive, negative, or neutral.",
        "Read the review below and label its overall sentiment as positive, negative, or neutral.",
    ], [
        "The delivery was two days late and the box was crushed, but the headphones themselves sound great.",
        "I've been using this blender every morning for a month and it still works like new. Totally worth the price.",
        "The hotel room was smaller than the photos suggested, and the Wi-Fi kept dropping.",
        "Service was quick and the staff remembered my name from last time. I'll definitely be back.",
        "The movie was fine. Nothing special, but it passed the time on a long flight.",
        "This is the third charger that stopped working within a week. Never buying this brand again.",
        "Our tour guide was funny, knowledgeable, and patient with the kids.",
        "The app crashes every time I try to upload a photo.",
        "The soup was cold when it arrived, though the bread was fresh.",
        "Honestly the best pair of running shoes I've ever owned.",
        "The package arrived on Tuesday as scheduled.",
        "I waited forty minutes on hold only to be disconnected.",
        "The book starts slowly, but the last hundred pages are impossible to put down.",
        "The new update made the interface cleaner and faster. Great job, team!",
        "The paint color looks nothing like the sample card.",
        "Parking was easy to find and the museum was not crowded on a weekday.",
        "My order was missing two items and nobody answered my emails.",
        "The yoga class was relaxing and the instructor explained every pose clearly.",
        "It's a basic umbrella. It keeps the rain off.",
        "The concert sound was muddy and we could barely hear the vocals.",
        "I love how lightweight this tent is; setting it up took five minutes.",
        "The coffee was overpriced for what you get.",
        "Check-in took a while, but the view from the balcony made up for it.",
        "The instructions were confusing and one screw was missing.",
    ]),
    # News topics.
    ([
        "Classify the following news headline into one of these categories: sports, politics, technology, business, health, science, or entertainment.",
        "Which topic does this headline belong to? Choose from sports, politics, technology, business, health, science, and entertainment.",
        "Assign the headline below to the most fitting news section: Sports, Politics, Technology, Business, Health, Science, or Entertainment.",
    ], [
        "Local Team Wins Regional Basketball Title After Double Overtime",
        "City Council Approves New Budget for Public Transit",
        "Startup Unveils Phone Battery That Charges in Ten Minutes",
        "Coffee Chain Reports Record Profits in Third Quarter",
        "Study Finds Short Daily Walks Lower Blood Pressure",
        "Astronomers Detect Water Vapor in the Atmosphere of a Distant Planet",
        "Award-Winning Director Announces Sequel to Animated Hit",
        "Senate Debates Bill to Expand Rural Broadband Access",
        "Marathon Runner Breaks Course Record in Rainy Conditions",
        "Airline Merger Expected to Raise Ticket Prices, Analysts Say",
        "New Vaccine Shows Promise Against Seasonal Flu Strains",
        "Researchers Map the Ocean Floor Using Underwater Drones",
        "Pop Star Cancels World Tour Dates Due to Illness",
        "Electric Scooter Company Expands to Twelve New Cities",
        "Software Update Fixes Security Flaw in Popular Web Browser",
        "Prime Minister Meets Trade Ministers Ahead of Summit",
        "Youth Soccer League Introduces New Concussion Guidelines",
        "Fossil Discovery Suggests Some Early Birds Could Swim",
    ]),
    # Fact or opinion.
    ([
        "Classify the following statement as a fact or an opinion.",
        "Is the following sentence a fact or an opinion? Briefly explain your answer.",
        "Decide whether this statement expresses a fact or an opinion.",
    ], [
        "Water boils at 100 degrees Celsius at sea level.",
        "Summer is the best season of the year.",
        "The Pacific is the largest ocean on Earth.",
        "Classical music is more relaxing than jazz.",
        "Mount Everest is located in the Himalayas.",
        "Everyone should learn to play at least one musical instrument.",
        "The human heart has four chambers.",
        "Cats make better pets than dogs.",
        "Paris is the capital of France.",
        "Online classes are less effective than in-person classes.",
        "Spinach tastes terrible.",
        "The first modern Olympic Games were held in Athens in 1896.",
        "Public transportation should be free for students.",
        "Light travels faster than sound.",
        "Breakfast is the most important meal of the day.",
        "Honey that is stored in a sealed jar can last for many years.",
    ]),
    # Animal groups.
    ([
        "Classify the following animal as a mammal, bird, reptile, amphibian, or fish.",
        "Which animal group does this animal belong to: mammal, bird, reptile, amphibian, or fish?",
    ], [
        "dolphin", "penguin", "salamander", "shark", "bat", "crocodile", "frog", "ostrich",
        "whale shark", "platypus", "gecko", "bald eagle", "salmon", "kangaroo", "sea turtle",
    ]),
    ([
        "Sort the following animals into mammals, birds, reptiles, amphibians, and fish.",
    ], [
        "cow, sparrow, lizard, trout, toad", "horse, snake, owl, tuna",
        "seal, parrot, tortoise, newt, goldfish", "bear, pelican, iguana, cod",
    ]),
    # Spam detection.
    ([
        "Classify this email as spam or not spam.",
        "Is the following message spam or a legitimate message? Explain briefly.",
    ], [
        "Congratulations! You have been selected to receive a $1,000 gift card. Click the link below within 24 hours to claim your prize.",
        "Hi Jenna, just a reminder that our team meeting has moved to 3 pm on Thursday. See you there.",
        "URGENT: Your bank account has been suspended. Verify your password immediately at the link below.",
        "Your order #48213 has shipped and should arrive by Friday. You can track it in your account.",
        "Make $5,000 a week from home with no experience! Limited spots available, reply now.",
        "Hello, the library book you reserved is ready for pickup at the front desk until May 12.",
        "Dear customer, you are the lucky winner of a free cruise. Send us your credit card details to cover the small processing fee.",
        "Hey, are we still on for lunch tomorrow? Let me know if noon works.",
        "Lose 10 kg in 7 days with this one secret pill doctors don't want you to know about!",
        "Reminder: your dentist appointment is on Monday at 9:30 am. Reply C to confirm.",
    ]),
    # Sentence types.
    ([
        "Classify the following sentence as declarative, interrogative, imperative, or exclamatory.",
        "What type of sentence is this: declarative, interrogative, imperative, or exclamatory?",
    ], [
        "Please close the window before you leave.", "Did you remember to buy milk?",
        "What an amazing performance that was!", "The train to Boston departs at noon.",
        "Hand me that screwdriver.", "How long have you lived in this city?",
        "I can't believe we won the championship!", "The museum is closed on Mondays.",
        "Turn left at the second traffic light.", "Why is the printer making that noise?",
    ]),
    # Food groups.
    ([
        "Classify each of the following foods as a fruit, vegetable, grain, or protein.",
        "Group these foods into fruits, vegetables, grains, and proteins.",
    ], [
        "apple, carrot, rice, chicken, banana, lentils", "spinach, oats, salmon, mango, broccoli",
        "quinoa, tofu, pear, cucumber, eggs", "barley, beef, grapes, zucchini",
        "tomato, bread, beans, blueberries, cauliflower", "pineapple, turkey, corn, kale",
    ]),
    # Customer support routing.
    ([
        "Classify the following customer message into one of these categories: billing, technical issue, shipping, account, or other.",
        "Which team should handle this customer request: billing, technical support, shipping, account management, or general inquiries?",
    ], [
        "I was charged twice for my subscription this month.",
        "The app won't let me log in even after resetting my password.",
        "My package says delivered but it isn't at my door.",
        "How do I change the email address on my account?",
        "The video keeps buffering even though my internet is fast.",
        "Can I get a refund for the annual plan I bought yesterday?",
        "I need to update the shipping address for an order I placed an hour ago.",
        "Do you have any job openings on your customer service team?",
    ]),
    # Book genres.
    ([
        "Based on the description, classify the book's genre as mystery, science fiction, romance, fantasy, or history.",
        "Read the book summary below and identify its genre: mystery, science fiction, romance, fantasy, or nonfiction history.",
    ], [
        "A retired detective is called back to solve a string of thefts in a small seaside town.",
        "In the year 2300, a crew of engineers must repair a failing space station before it falls into Jupiter.",
        "Two rival bakers fall in love while competing in a national baking contest.",
        "A young orphan discovers she can speak to dragons and must save her kingdom from an ancient curse.",
        "An account of how the Roman Empire built and maintained its vast network of roads.",
        "A journalist uncovers a secret society while investigating a missing professor.",
        "After an AI takes over the world's power grids, a teenage hacker tries to shut it down.",
        "A wizard's apprentice accidentally releases a spirit trapped in a magic mirror.",
    ]),
    # Parts of speech are built separately (the word goes into the instruction).
    # Active or passive voice.
    ([
        "Decide whether the following sentence is written in the active or the passive voice.",
    ], [
        "The cake was eaten by the children.", "The children ate the cake.",
        "The report will be finished by Friday.", "Our neighbor fixed the fence last weekend.",
        "The bridge was designed by a famous architect.", "Scientists discovered a new species of frog.",
    ]),
    # Formal or informal.
    ([
        "Is the following text formal or informal?",
        "Classify the tone of this message as formal or informal.",
    ], [
        "Hey, can u send me the notes from class? thx",
        "Dear Dr. Patel, I am writing to request an extension on the project deadline.",
        "lol that movie was sooo bad, never again",
        "We appreciate your patience while we review your application.",
        "Gonna be late, traffic is crazy",
        "Please find attached the revised agenda for Thursday's board meeting.",
    ]),
    # Energy sources.
    ([
        "Classify each of the following energy sources as renewable or non-renewable.",
    ], [
        "solar, coal, wind, natural gas, geothermal", "hydropower, oil, biomass, uranium",
        "tidal, propane, wind, diesel", "geothermal, coal, solar, wood pellets",
    ]),
    # Open or closed questions.
    ([
        "Classify the following question as open-ended or closed-ended.",
    ], [
        "Did you enjoy the trip?", "What did you enjoy most about the trip?",
        "Is the store open on Sundays?", "How could our school improve its lunch menu?",
        "Have you finished the report?", "Why did you choose to study biology?",
    ]),
    # Living or non-living; prime or composite.
    ([
        "Classify each item in the list as living or non-living.",
    ], [
        "tree, rock, mushroom, bicycle, bacteria", "cloud, earthworm, river, fern, robot",
        "coral, sand, moss, plastic bottle, sparrow",
    ]),
    ([
        "Classify each of the following numbers as prime or composite.",
    ], [
        "7, 12, 19, 21, 29", "15, 23, 31, 33, 41", "2, 9, 17, 27, 53",
    ]),
]

POS_TEMPLATES = [
    "What part of speech is the word '{w}' in the following sentence?",
    "Identify the part of speech of '{w}' as it is used in this sentence.",
]
POS_ITEMS = [
    ("quickly", "She quickly finished her homework before dinner."),
    ("bright", "The bright lights of the city kept him awake."),
    ("run", "They run along the river every morning."),
    ("run", "He went for a long run after work."),
    ("beautiful", "What a beautiful garden you have."),
    ("under", "The cat is hiding under the table."),
    ("happiness", "Her happiness was obvious to everyone in the room."),
    ("carefully", "Please carry the vase carefully."),
    ("light", "Turn off the light when you leave."),
    ("light", "This bag is surprisingly light."),
    ("and", "I bought apples and oranges at the market."),
    ("they", "They arrived early for the concert."),
]


def make_classification(rng):
    cat = "classification"
    out = []
    for templates, inputs in CLASSIFICATION_GROUPS:
        out += with_inputs(rng, cat, inputs, templates)
    deck = Deck(rng, POS_TEMPLATES)
    for word, sentence in POS_ITEMS:
        out.append(rec(cat, fill(deck.draw()[0], w=word), sentence))
    return out


# ---------------------------------------------------------------------------
# rewrite: tone, paraphrase, concision, grammar fixes
# ---------------------------------------------------------------------------

REWRITE_TEMPLATES = [
    "Rewrite the following sentence in a more formal tone.",
    "Paraphrase the following text.",
    "Rewrite this text to make it more concise.",
    "Rewrite the following so that a ten-year-old could understand it.",
    "Make the following sentence sound more polite.",
    "Rewrite this sentence in a friendlier, more casual tone.",
    "Rephrase the following text using simpler words.",
    "Rewrite this sentence to make it more persuasive.",
    "Rewrite the following message so it sounds more professional.",
    "Rewrite the following text in a more positive way.",
    "Give two different ways to rephrase the following sentence.",
    "Rewrite the following sentence to make it more vivid and descriptive.",
]
REWRITE_INPUTS = [
    "I think maybe we should probably think about moving the meeting to next week if that's okay with everyone.",
    "The new policy is bad and nobody likes it.",
    "Hey, I need that report by tomorrow, no excuses.",
    "Our product is good and it helps people do stuff faster.",
    "The weather was really really hot so we stayed inside all day and didn't do much.",
    "We regret to inform you that your application was not successful.",
    "Due to the fact that the train was delayed, I arrived late to the interview.",
    "You forgot to attach the file again.",
    "The park is nice. It has trees. It has a pond. People walk their dogs there.",
    "Photosynthesis is the process by which green plants use sunlight to synthesize nutrients from carbon dioxide and water.",
    "Can't make it tonight, sorry, something came up.",
    "The company's profits went down a lot this year because fewer people bought its phones.",
    "Please be advised that the kitchen will be closed for cleaning on Friday afternoon.",
    "This restaurant has the worst service I have ever seen in my entire life.",
    "The meeting was long and boring and nothing got decided.",
    "In order to apply for the program, applicants must submit a completed form along with two letters of recommendation.",
    "Our team worked hard and finished the project ahead of schedule.",
    "If you don't pay the fee by Monday, your account will be closed.",
    "It is important to drink water because the body needs water to work properly.",
    "The movie was long but the ending was good.",
    "I am writing to complain about the noise coming from the apartment upstairs every night.",
    "The city plans to build a new bike lane along Main Street next spring.",
    "Exercise is good for you because it makes your heart stronger and helps you sleep better.",
    "Nobody told me the deadline changed, so my work is late and that's not my fault.",
    "The museum offers free admission on the first Sunday of every month.",
    "Climate change is causing sea levels to rise, which threatens coastal communities around the world.",
    "I would like to know if it would be at all possible for you to send me the documents at your earliest convenience.",
    "The software is kind of hard to use and the buttons are confusing.",
    "We are excited to announce that our store will open a second location downtown this fall.",
    "Your essay has some good ideas but it is messy and hard to follow.",
    "Recycling helps reduce the amount of waste that ends up in landfills.",
    "The instructions say to mix the flour and sugar first and then add the eggs one at a time.",
    "He was very tired after work, so he went to bed early without eating dinner.",
    "The price of the tickets has gone up, which means fewer students can afford to attend.",
    "Stop leaving your dirty dishes in the sink.",
    "Bees are important because they pollinate many of the crops that people eat.",
    "I'm not sure this plan will work, but I guess we can try it.",
    "The library will extend its opening hours during the exam period.",
    "The hike was difficult, but the view from the top was absolutely worth it.",
    "The results of the survey show that most customers want faster delivery.",
    "Thanks for the gift, it was nice.",
    "Smartphones have changed the way people communicate, shop, and get their news.",
    "The meeting is canceled.",
    "Many people find it hard to save money because unexpected expenses come up every month.",
    "The old factory on the edge of town has been turned into an art center with studios and a café.",
    "Don't touch the equipment unless you've been trained.",
    "Our volunteers planted more than two hundred trees in the park last Saturday.",
    "The professor explained the theory, but most of the students still looked confused.",
    "It rained all week, and the football match was postponed twice.",
    "Reading before bed can help you relax and fall asleep faster.",
]

GRAMMAR_TEMPLATES = [
    "Correct the grammar and spelling mistakes in the following sentence.",
    "Edit the following sentence so that it is grammatically correct.",
    "Proofread this text and fix any errors.",
]
GRAMMAR_INPUTS = [
    "Their going to the store tomorow to buy some grocerys.",
    "Me and him was late to class yesterday.",
    "The dog wagged it's tail when it seen the ball.",
    "She don't like to eat vegetables, but she eat fruit every day.",
    "Each of the students have their own locker.",
    "I could of finished the project if I had more time.",
    "The informations you sent was very usefull.",
    "We was planning to go hiking but it raining all morning.",
    "Between you and I, the plan dont make sense.",
    "He has went to the gym three times this week.",
    "There is many reasons why people enjoys traveling.",
    "Your the best teacher I ever had, thank you for everything.",
    "The childrens was playing in the park when it started to rain.",
    "I recieved you're message but I didnt have time to reply.",
    "Less people came to the meeting then we expected.",
]

CONCISE_TEMPLATES = [
    "Make this sentence shorter without changing its meaning.",
    "Remove unnecessary words from the following sentence.",
    "Rewrite the sentence below so that it is clear and concise.",
]
WORDY_INPUTS = [
    "At this point in time, we are currently in the process of reviewing all of the applications that we have received.",
    "In my personal opinion, I think that the movie was not very good at all.",
    "The reason why I was late is because of the fact that my alarm did not go off.",
    "Each and every one of the employees is required to attend the mandatory training session.",
    "It is absolutely essential and necessary that everyone arrives on time for the event.",
    "We made the decision to postpone the trip until a later date in the future.",
    "The book that I read last week, which was written by a very famous author, was really extremely interesting.",
    "In spite of the fact that it was raining heavily, the game continued on as planned.",
    "She is a person who is very kind and who always helps other people when they need help.",
    "For the purpose of improving customer satisfaction, we will be making some changes to our return policy.",
]


def make_rewrite(rng):
    cat = "rewrite"
    out = with_inputs(rng, cat, REWRITE_INPUTS, REWRITE_TEMPLATES, per_item=2)
    out += with_inputs(rng, cat, GRAMMAR_INPUTS, GRAMMAR_TEMPLATES)
    out += with_inputs(rng, cat, WORDY_INPUTS, CONCISE_TEMPLATES)
    return out


# ---------------------------------------------------------------------------
# Short fictional news-style passages, shared by extraction and summarize.
# Tags say what each passage contains: p=people, d=dates, n=numbers,
# l=locations, o=organizations.
# ---------------------------------------------------------------------------

PASSAGES = [
    ("pdnlo", "On March 3, 2021, the Riverside Public Library opened a new branch in Oakdale. The branch cost $4.2 million to build and holds about 60,000 books. Mayor Linda Torres cut the ribbon alongside head librarian Marcus Bell."),
    ("pdnlo", "Chef Aiko Tanaka opened her first restaurant, Blue Harbor, in Portland in 2015. Within three years she had expanded to Seattle and Vancouver, and by 2019 her restaurant group employed more than 200 people."),
    ("pdnl", "The Greenway Marathon took place on Sunday, October 8. Kenyan runner David Mutua won the men's race in 2 hours and 9 minutes, while Sofia Alvarez of Spain won the women's race. About 18,000 runners finished the course."),
    ("pdnlo", "Last quarter, Northwind Electronics sold 1.2 million headphones, an increase of 15 percent over the same period last year. CEO Rachel Kim said the company plans to open a new factory in Monterrey, Mexico, by June 2025."),
    ("pdnlo", "Dr. Samuel Okafor, a researcher at the University of Lagos, published a study in 2022 showing that planting trees along roads lowered summer temperatures by up to 3 degrees Celsius in nearby neighborhoods."),
    ("pdnl", "The Hartfield Community Garden was founded in 2009 by neighbors Ruth Green and Tomás Díaz. Today it has 45 plots, a tool shed, and a waiting list of more than 30 families. Members meet on the first Saturday of every month."),
    ("dnl", "In 1869, the Suez Canal opened, connecting the Mediterranean Sea to the Red Sea. The canal, about 164 kilometers long at the time, shortened the sea route between London and Mumbai by roughly 7,000 kilometers."),
    ("pdnlo", "Brightside Bikes, a small shop in Leeds, repaired 1,500 bicycles in 2023. Owner Priya Shah says demand grew after the city added 12 miles of protected bike lanes in the spring."),
    ("dnlo", "The Lumen-3 satellite was launched from French Guiana on July 14, 2023, by the European Space Agency. It will spend five years measuring ice thickness in Greenland and Antarctica."),
    ("pdnlo", "Jazz pianist Clara Weiss will perform at Orchard Hall in Boston on Friday, May 17, at 8 pm. Tickets cost $35 for adults and $15 for students, and proceeds will support the city's youth music program."),
    ("pdnlo", "Founded in 1998 by Omar Haddad, Cedar Books started as a single bookstore in Beirut. The company now runs 14 stores across Lebanon and Jordan and sells about 400,000 books each year."),
    ("pdno", "During the 2022 school year, Lincoln High School gave teachers Friday afternoons for lesson planning. Principal Janet Moore reported that student attendance rose from 88 percent to 93 percent over the year."),
    ("nl", "The Andes mountain range stretches about 7,000 kilometers along the western edge of South America, passing through seven countries, including Chile, Peru, and Colombia. Its highest peak, Aconcagua, rises 6,961 meters."),
    ("pdnlo", "On 12 January 2024, the Green Valley Water Board approved a plan to replace 25 kilometers of old pipes. Engineer Hannah Weber estimated the work will take 18 months and cost €9 million."),
    ("pdnl", "Long-distance swimmer Lena Novak crossed the English Channel from Dover to Calais in 10 hours and 42 minutes on August 5. She trained for two years and swam more than 1,000 kilometers in preparation."),
    ("dnlo", "Sunrise Foods recalled 20,000 jars of peanut butter on Tuesday after tests at its plant in Ohio found possible contamination. The company said customers can return the jars to any store for a full refund."),
    ("dnlo", "The Tokyo Skytree, completed in 2012, is 634 meters tall and was designed by the architecture firm Nikken Sekkei. It serves as a broadcasting tower and attracts millions of visitors each year."),
    ("pdnlo", "Grace Liu and her brother Kevin launched a meal-kit delivery service called FreshBox in Toronto in 2020. The company delivered 50,000 boxes in its first year and now works with 35 local farms."),
    ("pdnlo", "The annual Maple Street Book Fair will run from September 20 to 22 at the Oakwood Community Center. More than 60 local authors, including poet James Carter, will sign books, and entry is free for children under 12."),
    ("pdlo", "In 1928, Alexander Fleming noticed that mold had killed bacteria in one of his dishes at St Mary's Hospital in London. His discovery led to penicillin, which became widely available in the 1940s."),
    ("pdnlo", "Harbor City Transit will add 40 electric buses to its fleet by December 2025. Director Miguel Santos said the change will cut the agency's fuel costs by about $2 million a year."),
    ("pdnlo", "Professor Anita Rao of Delhi University led a team of 12 students who surveyed 3,000 households in 2021. They found that 64 percent of families used a mobile phone to make digital payments."),
    ("dnlo", "The Willow Creek Bridge, built in 1936, was closed on April 2 after inspectors found cracks in two of its supports. Officials from Marion County expect repairs to cost $1.8 million and to finish by autumn."),
    ("pdnl", "Nora Lindqvist, a 16-year-old student from Uppsala, Sweden, won first prize at the 2023 national science fair for a low-cost water filter made from sand, charcoal, and recycled bottles."),
    ("dno", "Pinecrest Hospital opened a new children's wing on November 1 with 48 beds and a rooftop play area. The project was funded by a $12 million donation from the Harper Family Foundation."),
    ("dnlo", "The Great Barrier Reef, off the coast of Queensland, Australia, covers about 344,000 square kilometers. Scientists from James Cook University reported major coral bleaching events in 2016, 2017, and 2020."),
    ("pdnlo", "At its meeting on June 9, the Westbrook School Board voted 5 to 2 to start classes 30 minutes later next year. Board chair Daniel Reyes said the decision was based on research about teenagers' sleep."),
    ("dnlo", "Orbit Games released its puzzle app Tilemaster on February 1, 2024. The app was downloaded 2 million times in its first month and reached the top 10 in app stores in Brazil, India, and Germany."),
    ("pdnlo", "Photographer Yusuf Demir spent six months in 2022 documenting daily life along the Bosphorus in Istanbul. His exhibition of 80 photographs opens at the Galata Art Gallery on March 15."),
    ("dnl", "The town of Millbrook held its first solar energy fair on May 4. About 1,200 visitors attended, and 85 households signed up for a program that offers rooftop panels at a 30 percent discount."),
    ("pdnl", "Ella Fitzgerald was born on April 25, 1917, in Newport News, Virginia. Over a career spanning almost six decades, she won 13 Grammy Awards and sold tens of millions of records."),
    ("nl", "The Danube River flows about 2,850 kilometers from Germany's Black Forest to the Black Sea, passing through ten countries and four capital cities, including Vienna and Budapest."),
    ("pdnlo", "QuickShip Logistics announced on Monday that it will hire 3,000 seasonal workers for its warehouses in Texas and Georgia. Starting pay will be $19 per hour, according to spokesperson Emily Ford."),
    ("pdnl", "Retired teacher Walter Brooks, 74, has run a free chess club at the Elm Street Library every Wednesday since 2011. More than 400 children have learned to play there, and three have gone on to win state titles."),
    ("dnl", "In 2012, the city of Copenhagen set a goal of becoming carbon neutral by 2025. A decade later, more than 60 percent of residents commuted to work or school by bicycle."),
    ("pdnlo", "The Coral Bay Aquarium welcomed its one-millionth visitor on July 30, a nine-year-old named Lucas Martin from Melbourne. He received a lifetime family pass and a behind-the-scenes tour with marine biologist Dr. Fiona Walsh."),
    ("pdnlo", "Apex Robotics raised $45 million in new funding in March to expand production of its warehouse robots. The company, based in Austin, Texas, was founded in 2017 by engineers Raj Patel and Helen Zhou."),
    ("dnl", "The Trans-Siberian Railway, completed in 1916, runs about 9,289 kilometers from Moscow to Vladivostok. A full journey without stopovers takes roughly seven days."),
    ("pdnlo", "Volunteers from the Clean Shores Project collected 2.3 tonnes of litter from Brighton beach on Saturday, April 22. Coordinator Amina Yusuf said plastic bottles made up nearly half of the waste."),
    ("pdnlo", "Violinist Mateo Ruiz, 22, won the Vienna International Music Competition on October 3, beating 48 other finalists. He will receive €20,000 and a concert tour across Europe next year."),
    ("pdno", "Stonegate University will raise tuition by 4 percent starting in fall 2025. President Carol Jennings said the extra money will pay for new science labs and 25 additional scholarships."),
    ("pdnl", "The first confirmed ascent of Mount Everest was made on May 29, 1953, by Edmund Hillary of New Zealand and Tenzing Norgay, a Sherpa from Nepal. The peak is 8,849 meters above sea level."),
    ("dnlo", "Bluebell Dairy opened a visitor center in Vermont in 2018. Around 40,000 people tour the farm each year, and the on-site shop sells 25 flavors of ice cream made from the farm's milk."),
    ("pdnlo", "On Thursday, software engineer Priyanka Nair presented her team's new translation app at the TechForward conference in Singapore. The app supports 32 languages and works without an internet connection."),
    ("dnlo", "The Riverside Farmers' Market runs every Saturday from 8 am to 1 pm between April and October. It hosts around 70 vendors, and last year it launched a program that doubles food-stamp spending up to $20."),
]

EXTRACTION_TEMPLATES = {
    "p": ["Extract the names of all the people mentioned in the following text.",
          "Who are the people mentioned in this passage? List their names and roles."],
    "d": ["List every date or year mentioned in the passage below.",
          "Find all the dates in the following text and say what happened on each."],
    "n": ["Identify all the numbers in the text and explain what each one refers to.",
          "Extract every numerical figure from this paragraph."],
    "l": ["Extract the names of all places mentioned in this text.",
          "List the cities, countries, and other locations that appear in the following passage."],
    "o": ["What organizations or companies are mentioned in the following paragraph?",
          "Extract the names of all organizations from the text."],
    "*": ["Extract the key facts from this passage as a bulleted list.",
          "Pick out five important keywords from the text below."],
}

# Extraction tasks on other kinds of text (recipes, emails, receipts...).
EXTRACTION_GROUPS = [
    (["Extract the list of ingredients from the following recipe."], [
        "To make the pancakes, whisk together 2 cups of flour, 2 tablespoons of sugar, and a teaspoon of baking powder. Add 2 eggs, 1 1/2 cups of milk, and a little melted butter, then cook on a hot pan.",
        "For a quick salsa, chop four ripe tomatoes, half a red onion, one jalapeño, and a handful of cilantro. Mix with the juice of one lime and a pinch of salt.",
        "Stir-fry sliced chicken in sesame oil, then add broccoli, sliced carrots, and garlic. Finish with soy sauce, a spoonful of honey, and chopped green onions.",
        "Blend one banana, a cup of frozen strawberries, half a cup of yogurt, and a splash of orange juice until smooth.",
    ]),
    (["Extract the meeting date, time, and location from this message."], [
        "Hi all, our quarterly planning meeting will be held on Wednesday, June 12, at 10:30 am in Conference Room B on the third floor. Please bring your budget estimates. Thanks, Laura",
        "Quick note: the design review moved to Friday at 2 pm. We'll meet in the small room next to the kitchen instead of online.",
        "Dear parents, the end-of-year concert will take place on Thursday, May 30, at 6 pm in the school gym. Doors open at 5:30.",
        "Team, let's have lunch together next Tuesday at 12:15 at Rosa's Trattoria on King Street to celebrate the launch.",
    ]),
    (["Extract all email addresses and phone numbers from the following text."], [
        "For questions about your order, write to support@brightlamp.example or call 555-0142. Our sales team can be reached at sales@brightlamp.example.",
        "Contact Ms. Alvarez at (555) 201-3344 or m.alvarez@northfield.example to schedule a campus visit.",
        "Event volunteers: call Ben on 555-7788 or email volunteers@cityrun.example. For media requests, contact press@cityrun.example.",
        "Reach our help desk at helpdesk@mapleit.example, or dial 555-0190 during business hours.",
    ]),
    (["List each item and its price from the receipt below.",
      "What is the most expensive item on this receipt?"], [
        "Coffee beans 12.50; Oat milk 3.20; Blueberry muffin 2.75; Paper filters 4.10; Total 22.55",
        "Notebook x3 - $7.50, Blue pens (pack) - $4.25, Stapler - $9.99, Sticky notes - $3.40",
        "2x Movie ticket 24.00, Large popcorn 8.50, Soda 4.75, Candy 3.25",
    ]),
    (["From the job advertisement below, extract the job title, location, and pay."], [
        "We are hiring a Junior Graphic Designer to join our team in Denver. The position is full-time and pays $48,000 to $55,000 per year. Apply by March 31.",
        "Part-time barista wanted at Hilltop Café, Brighton. Weekend shifts, £11.50 per hour plus tips. Experience preferred but not required.",
        "Remote Data Analyst position available. Salary: $72,000 a year. Must know SQL and Excel. Start date: September 1.",
    ]),
    (["Extract the product features mentioned in the following review."], [
        "This laptop has a 14-inch screen, 16 GB of RAM, and a battery that lasts about 10 hours. The keyboard is backlit and the whole thing weighs only 1.2 kg.",
        "The air fryer has a 5-liter basket, six preset cooking modes, and a timer that goes up to 60 minutes. It's also dishwasher safe.",
    ]),
]


def make_extraction(rng):
    cat = "extraction"
    out = []
    for tags, text in PASSAGES:
        options = EXTRACTION_TEMPLATES["*"] + [t for tag in tags for t in EXTRACTION_TEMPLATES[tag]]
        for tpl in rng.sample(options, 2):
            out.append(rec(cat, fill(tpl), text))
    for templates, inputs in EXTRACTION_GROUPS:
        out += with_inputs(rng, cat, inputs, templates)
    return out


# ---------------------------------------------------------------------------
# summarize: the shared passages plus explanatory/opinion/story paragraphs
# ---------------------------------------------------------------------------

SUMMARY_TEMPLATES = [
    "Summarize the following passage in one sentence.",
    "Give a brief summary of this text.",
    "Write a short headline that summarizes the paragraph below.",
    "Summarize the main point of this paragraph in under 20 words.",
    "Provide a TL;DR for the following text.",
    "What is the main idea of the following paragraph?",
    "Condense the following text into two or three bullet points.",
    "Summarize this passage for a busy reader in one or two sentences.",
    "Write a one-line summary of the text below.",
    "Explain the key message of this passage in your own words.",
]
SUMMARY_PASSAGES = [
    "Many people believe that multitasking makes them more productive. However, research shows that switching between tasks costs time and increases mistakes. Focusing on one task at a time, even for short blocks, usually leads to better results.",
    "Urban trees do more than make streets look pleasant. They provide shade that cools buildings, absorb rainwater that would otherwise flood drains, and offer homes for birds and insects. Studies also link green streets to lower stress among residents.",
    "When Mia moved to a new city, she did not know anyone. She joined a weekend hiking group, and at first she barely spoke. By the end of the summer, the group had become her closest friends, and she was leading hikes herself.",
    "Sleep plays a key role in learning. While we sleep, the brain sorts and stores information from the day. Students who sleep well before an exam often remember more than those who stay up late studying.",
    "Remote work has become common for many office jobs. Employees enjoy skipping the commute and having flexible hours, but some report feeling isolated. Companies are experimenting with hybrid schedules to balance both sides.",
    "Bees pollinate many of the crops humans eat. In recent years, bee populations have declined because of habitat loss, pesticides, and disease. Planting wildflowers and reducing pesticide use can help bees recover.",
    "The old bakery on the corner had been closed for years. One spring, a young couple bought it, repaired the ovens, and started selling bread at dawn. Soon, a line of neighbors formed outside every morning.",
    "Drinking enough water helps the body control its temperature, carry nutrients, and remove waste. Needs vary with age, activity, and climate, so a simple guide is to drink when thirsty and to drink more in hot weather.",
    "Electric cars produce no exhaust while driving, which improves air quality in cities. However, their overall environmental benefit depends on how the electricity is generated and how the batteries are made and recycled.",
    "Learning a musical instrument takes patience. Beginners often feel frustrated when progress is slow. Teachers recommend practicing for short periods every day rather than for hours once a week.",
    "Fast fashion makes clothes cheap and trendy, but it has hidden costs. Factories use large amounts of water and energy, and many garments are thrown away after only a few wears. Buying fewer, better-made items can reduce this waste.",
    "The invention of the printing press in the fifteenth century made books far cheaper to produce. As a result, more people learned to read, ideas spread faster, and scholars across Europe could share their work.",
    "A good night's sleep is often ruined by screens. Using phones and tablets late in the evening keeps the brain alert and can delay sleep. Experts suggest putting devices away an hour before bed.",
    "Our company will switch to a new email system next month. All staff must complete a short online training by the 15th. The IT team will hold drop-in sessions on Tuesday and Thursday for anyone who needs help.",
    "Volcanoes form where molten rock from deep inside the Earth reaches the surface. Some erupt explosively, throwing ash high into the air, while others release slow rivers of lava. Volcanic soil is often very fertile.",
    "Grandpa Joe kept every letter he had ever received in a wooden box under his bed. After he passed away, his grandchildren read them together and discovered stories about his life they had never heard.",
    "Public libraries offer much more than books. Many lend laptops, host job-search workshops, run children's reading programs, and provide quiet spaces for study. For some communities, they are the only free indoor public space.",
    "Breakfast cereals marketed to children often contain large amounts of sugar. Nutritionists advise parents to read labels carefully and to choose options made with whole grains and less added sugar.",
    "The customer said the vacuum cleaner worked well for the first month. After that, the suction became weak, and the battery only lasted ten minutes. She contacted support, who sent a replacement within a week.",
    "Coral reefs cover a tiny fraction of the ocean floor but support a huge variety of marine life. When the water gets too warm, corals expel the algae that feed them, a process known as bleaching.",
    "Practicing gratitude can improve well-being. People who regularly write down things they are thankful for often report a better mood. The habit takes only a few minutes a day.",
    "The city council is considering a ban on cars in the historic center on weekends. Shop owners worry that fewer customers will visit, while residents say the streets would be safer and quieter.",
    "Octopuses are remarkably intelligent animals. They can solve puzzles, open jars, and even escape from tanks. Each of their eight arms contains many neurons, which lets the arms act somewhat independently.",
    "After weeks of practice, the school robotics team finally got their robot to climb the ramp. At the regional competition, it broke down in the first round, but the judges gave the team an award for creative design.",
    "Composting turns food scraps and yard waste into rich soil. It reduces the amount of trash sent to landfills and cuts methane emissions. A simple backyard bin or even a small indoor container is enough to start.",
    "Social media allows people to stay in touch with friends and family across the world. At the same time, constant scrolling can eat up hours and leave users comparing themselves with others.",
    "The hotel was in a perfect location near the beach, and the breakfast buffet was excellent. However, the walls were thin, and we were woken up by noise from the hallway on two nights.",
    "Written in simple language, the new city guide explains how to register for local services, find a doctor, and use public transportation. It is available in eight languages at libraries and online.",
    "Antibiotics kill bacteria but have no effect on viruses, such as those that cause colds and flu. Taking antibiotics when they are not needed can help bacteria become resistant, making future infections harder to treat.",
    "The first week at a new job can be overwhelming. New employees should focus on learning names, asking questions, and understanding how their team works, rather than trying to impress everyone immediately.",
]
PLOT_TEMPLATES = [
    "Summarize the plot of {x} in a few sentences.",
    "Give a brief summary of the story of {x}.",
]
PLOTS = [
    "Romeo and Juliet", "Cinderella", "The Tortoise and the Hare", "Little Red Riding Hood",
    "Homer's Odyssey", "Moby-Dick", "Frankenstein", "Goldilocks and the Three Bears",
    "The Boy Who Cried Wolf", "Pride and Prejudice", "Jack and the Beanstalk",
    "The Wizard of Oz", "Don Quixote", "Hamlet", "A Christmas Carol",
]


def make_summarize(rng):
    cat = "summarize"
    out = with_inputs(rng, cat, [text for _, text in PASSAGES], SUMMARY_TEMPLATES)
    out += with_inputs(rng, cat, SUMMARY_PASSAGES, SUMMARY_TEMPLATES, per_item=2)
    out += spread(rng, cat, PLOTS, PLOT_TEMPLATES)
    return out


# ---------------------------------------------------------------------------
# transform: change tense/voice/format/language of a given input
# ---------------------------------------------------------------------------

TRANSFORM_GROUPS = [
    (["Change the following sentence to the past tense.",
      "Rewrite this sentence in the past tense."], [
        "She walks to school every morning and buys a coffee on the way.",
        "The children play in the garden while their parents cook dinner.",
        "I write a letter to my grandmother every month.",
        "The team wins the game and the fans cheer loudly.",
        "He forgets his keys and has to wait outside.",
        "We take the train to the coast and swim in the sea.",
        "The scientist tests the samples and records the results.",
        "They build a small boat and sail across the lake.",
        "My brother teaches me how to ride a bike.",
        "The store closes early on holidays.",
    ]),
    (["Rewrite this sentence in the future tense."], [
        "The band played three new songs at the concert.", "I visited my cousins in Chicago.",
        "The company launched a new product line.", "We planted tomatoes in the backyard.",
        "She studies Japanese in the evenings.", "The museum opened a new dinosaur exhibit.",
    ]),
    (["Rewrite the following sentence in the active voice.",
      "Change this sentence from the passive voice to the active voice."], [
        "The letter was written by my grandfather in 1952.",
        "The new bridge was opened by the mayor.",
        "Mistakes were made by the accounting team.",
        "The song was performed by a local choir.",
        "The window was broken by a baseball.",
        "The decision will be announced by the committee tomorrow.",
        "The cookies were baked by the students for the fundraiser.",
        "The email was sent to all customers by the manager.",
    ]),
    (["Convert this sentence to the passive voice."], [
        "The chef prepared a special dinner for the guests.",
        "Engineers will test the new engine next week.",
        "The dog chased the cat across the yard.",
        "Thousands of tourists visit the castle every year.",
        "The teacher graded the exams over the weekend.",
    ]),
    (["Convert the following paragraph into a bulleted list.",
      "Turn this text into a numbered list."], [
        "To reset your router, first unplug it from the wall. Wait about thirty seconds, then plug it back in. Once the lights stop blinking, reconnect your devices to the network.",
        "For the camping trip, bring a tent, a sleeping bag, a flashlight with spare batteries, a water filter, and enough food for three days.",
        "Start by preheating the oven to 180 degrees. Mix the butter and sugar, add the eggs, then fold in the flour. Pour the batter into a tin and bake for 35 minutes.",
        "Good study habits include setting a regular schedule, removing distractions like your phone, taking short breaks, and reviewing notes within a day of each lecture.",
        "To plant a tree, dig a hole twice as wide as the root ball, place the tree so it stands straight, fill the hole with soil, and water it deeply.",
        "The new gym membership includes access to the pool, two free personal training sessions, unlimited group classes, and a locker.",
        "Before submitting your application, check that you have signed the form, attached a copy of your ID, included two references, and paid the fee.",
        "To make a cup of tea, boil fresh water, put a tea bag in a mug, pour in the hot water, let it steep for three minutes, and then remove the bag.",
    ]),
    (["Turn the following statement into a question."], [
        "The train leaves at six o'clock.", "She has finished her homework.",
        "They are moving to Canada next year.", "The museum is free on Sundays.",
        "He can speak three languages.", "You watered the plants this morning.",
    ]),
    (["Convert this informal message into a formal email.",
      "Rewrite the following text message as a formal letter."], [
        "hey mr. jones, i'm sick today so i can't come to work. sorry!",
        "yo, the printer on floor 2 is broken again, can someone fix it",
        "thanks for the interview today!! really excited about the job, hope to hear back soon",
        "can i get a refund? the shoes don't fit and i haven't worn them",
        "hi prof, i missed class tuesday, did i miss anything important?",
        "gonna need a couple more days for the report, stuff came up",
        "hey, is the apartment still available? i'd like to see it this weekend",
        "loved the workshop yesterday, any chance you'll run another one?",
    ]),
    (["Translate the following sentence into Spanish.",
      "Translate this sentence into French.",
      "Translate the following sentence into German."], [
        "Where is the nearest train station?", "I would like a cup of coffee, please.",
        "The library opens at nine in the morning.", "My sister lives in a small town near the sea.",
        "How much does this jacket cost?", "We are going to the beach tomorrow.",
        "Thank you very much for your help.", "It is raining, so take an umbrella.",
        "I have two brothers and one sister.", "What time does the movie start?",
        "The food at this restaurant is delicious.", "Could you speak more slowly, please?",
    ]),
    (["Write the following numbers in words."], [
        "17, 45, 300, 1,250", "8, 92, 604, 12,000", "13, 70, 999", "21, 156, 2,024",
    ]),
    (["Convert the following dates to the format YYYY-MM-DD."], [
        "March 5, 2021; July 19, 1999; December 31, 2010", "1st of February 2023, 14 August 2008",
        "June 7, 2015 and October 22, 2019", "Jan 3 2000, Sep 30 2012, Nov 11 2018",
    ]),
    (["Convert the following measurements to metric units."], [
        "3 miles, 10 pounds, 2 gallons", "6 feet, 12 ounces, 70 degrees Fahrenheit",
        "5 inches, 1 quart, 150 pounds", "a 26.2-mile marathon",
        "2 cups of flour and 1 pound of butter",
    ]),
    (["Rewrite the following paragraph in the third person.",
      "Rewrite this text in the third person, using the name Alex."], [
        "I woke up early and went for a run. After breakfast, I called my mother and told her about my new job.",
        "We decided to repaint our kitchen. It took us two weekends, but we love the new yellow walls.",
        "I have always loved astronomy. When I was ten, I got my first telescope and spent every clear night looking at the moon.",
        "I missed the bus, so I walked to work in the rain. By the time I arrived, my shoes were soaked.",
        "My friends and I started a book club last year. We meet once a month at my apartment.",
    ]),
    (["Combine the following sentences into one sentence."], [
        "The sun was setting. The sky turned orange. The birds flew home.",
        "Maria likes painting. She also enjoys playing the piano.",
        "The store was closed. We went to the café next door.",
        "The test was difficult. Most students passed it.",
        "Our flight was delayed. We missed our connection in Frankfurt.",
        "The house is old. It has a beautiful garden. It is close to the park.",
        "He studied hard. He wanted to become a doctor.",
    ]),
    (["Change the following sentence from direct speech to reported speech."], [
        '"I am tired," said Anna.',
        '"We will arrive at noon," they told us.',
        '"Did you finish the report?" my manager asked.',
        '"I can\'t find my glasses," Grandpa said.',
        '"Please close the door," the teacher said to the students.',
    ]),
    (["Convert the following list into a complete sentence."], [
        "Ingredients: eggs, flour, milk, sugar", "Countries visited: Italy, Greece, Turkey",
        "Skills: Python, data analysis, public speaking",
        "Weekend plans: laundry, grocery shopping, movie night",
    ]),
    (["Organize the following information into a table."], [
        "Anna is 28 and lives in Madrid. Ben is 35 and lives in Oslo. Chen is 22 and lives in Taipei.",
        "The red shirt costs $15, the blue jeans cost $40, and the black jacket costs $85.",
        "On Monday it was 18 degrees and sunny, on Tuesday 15 degrees and cloudy, and on Wednesday 12 degrees with rain.",
        "The math exam is on May 3 in Room 101, history is on May 5 in Room 204, and biology is on May 8 in the lab.",
    ]),
    (["Convert the following information into JSON format."], [
        "Name: Laura Chen, Age: 31, City: Vancouver, Occupation: nurse",
        "Book title: The Quiet River; Author: M. Ellis; Year: 2017; Pages: 312",
        "Product: desk lamp, price 24.99, color white, in stock: yes",
        "Flight BA 117 departs London at 14:30 and arrives in New York at 17:25.",
    ]),
    (["Sort the following words in alphabetical order."], [
        "banana, cherry, apple, mango, grape", "zebra, lion, elephant, giraffe, antelope",
        "Tokyo, Berlin, Cairo, Lima, Athens", "violin, cello, flute, trumpet, drum, harp",
    ]),
    (["Change every noun in the following sentence to its plural form."], [
        "The child put the box on the shelf next to the knife.",
        "A mouse ran past the woman and her baby.",
        "The leaf fell on the bench near the church.",
    ]),
    (["Rewrite this sentence as a negative statement."], [
        "She always arrives on time.", "We have enough chairs for everyone.",
        "The shop sells fresh bread.",
    ]),
    (["Convert the following sentence into a short news headline."], [
        "A local teenager rescued a cat that had been stuck on the roof of the town hall for two days.",
        "Scientists have found that a common houseplant can remove some pollutants from indoor air.",
        "The city will plant five thousand new trees over the next three years to reduce summer heat.",
    ]),
]


def make_transform(rng):
    cat = "transform"
    out = []
    for templates, inputs in TRANSFORM_GROUPS:
        out += with_inputs(rng, cat, inputs, templates)
    return out


# ---------------------------------------------------------------------------
# Assemble, check, dedup, write
# ---------------------------------------------------------------------------

MAKERS = {
    "open_qa": make_open_qa,
    "brainstorm": make_brainstorm,
    "classification": make_classification,
    "rewrite": make_rewrite,
    "extraction": make_extraction,
    "summarize": make_summarize,
    "transform": make_transform,
    "math": make_math,
    "code": make_code,
    "creative": make_creative,
    "advice": make_advice,
    "definition": make_definition,
}


def normalise(record: dict) -> str:
    """Key used for dedup: lowercased instruction+input, whitespace collapsed."""
    text = record["instruction"] + " " + record["input"]
    return re.sub(r"\s+", " ", text.lower()).strip()


def build() -> list[dict]:
    records = []
    for category, maker in MAKERS.items():
        # A string seed per category keeps categories independent and stable.
        records += maker(random.Random(f"kdscale-builtin-{category}"))
    seen: set[str] = set()
    unique = []
    for r in records:
        assert r["instruction"].strip(), r
        assert len(r["instruction"]) < MAX_INSTRUCTION_CHARS, r["instruction"]
        assert len(r["input"]) < MAX_INPUT_CHARS, r["input"]
        key = normalise(r)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    # Interleave categories so any prefix of the file is a fair mix.
    random.Random("kdscale-builtin-order").shuffle(unique)
    return unique


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output jsonl path (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    records = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")

    counts = Counter(r["category"] for r in records)
    with_input = sum(1 for r in records if r["input"])
    print(f"wrote {len(records)} records to {args.out}")
    print(f"with input: {with_input} ({with_input / len(records):.1%}); "
          f"distinct templates used: {len(TEMPLATES_USED)}")
    print("per category: " + ", ".join(f"{c}={counts[c]}" for c in MAKERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
