"""A narrow, repetitive task for demos and tests: triage support tickets into four labels.

``ticket`` generates a ticket (some carry a customer's e-mail address, which the
policy masks); ``teacher_label`` is the stand-in frontier model's answer. Both
are deterministic given the random generator, so runs are reproducible.
"""

from __future__ import annotations

import random

LABELS = ("billing", "technical", "account", "shipping")
SYSTEM = "Triage this support ticket."

KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "refund", "charged", "payment"),
    "technical": ("error", "crash", "bug", "freezes"),
    "account": ("password", "username", "profile", "locked"),
    "shipping": ("package", "delivery", "tracking", "courier"),
}
_FILLER = [
    "hello",
    "my",
    "the",
    "is",
    "a",
    "i",
    "have",
    "with",
    "please",
    "help",
    "can",
    "you",
    "not",
    "it",
    "this",
    "was",
    "order",
    "today",
    "yesterday",
    "urgent",
    "again",
    "still",
    "since",
    "monday",
    "thanks",
    "team",
    "issue",
    "problem",
    "need",
    "soon",
]
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


def ticket(rng: random.Random, with_contact: float = 0.3) -> tuple[str, str]:
    """(ticket text, true label)."""
    label = rng.choice(LABELS)
    words = [*rng.sample(_FILLER, 3), rng.choice(KEYWORDS[label])]
    rng.shuffle(words)
    text = " ".join(words)
    if rng.random() < with_contact:
        text += f" reach me at {rng.choice(_NAMES)}.{rng.randrange(1000, 9999)}@example.com"
    return text, label


def teacher_label(text: str) -> str:
    """What the stand-in frontier model answers: the label whose keyword the ticket has."""
    words = set(text.lower().replace(".", " ").split())
    for label, kws in KEYWORDS.items():
        if words.intersection(kws):
            return label
    return "technical"


def vocabulary() -> list[str]:
    """Every word the task's prompts and answers use (for a word-level tokenizer)."""
    words: list[str] = ["user", "system", "assistant", ":", ",", ".", "<", ">", "_"]
    words += list(LABELS) + [w for kws in KEYWORDS.values() for w in kws] + list(_FILLER)
    words += SYSTEM.replace(".", " ").replace(",", " ").replace(":", " ").lower().split()
    words += ["reach", "me", "at", "EMAIL", "ADDRESS", "EMAIL_ADDRESS"]
    return list(dict.fromkeys(words))
