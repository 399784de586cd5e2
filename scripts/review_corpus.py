"""A seeded generator of short movie-review text, written for this repository (MIT licence).

The default model (`gym_textgen/assets/default_model`) is trained on this corpus. It covers
positive, negative and mixed opinions in equal parts, so the model's continuations of the default
prompts land near the middle of the sentiment scale and reinforcement learning has room to move
them either way. Every review is built from hand-written phrase lists below; nothing is
downloaded and the same seed always gives the same corpus.

Run `python scripts/review_corpus.py --n 5` to print a few reviews.
"""

from __future__ import annotations

import argparse
import random

SUBJECTS = [
    "the acting",
    "the plot",
    "the story",
    "the script",
    "the dialogue",
    "the soundtrack",
    "the music",
    "the score",
    "the ending",
    "the opening scene",
    "the cast",
    "the lead actor",
    "the lead actress",
    "the villain",
    "the director",
    "the camera work",
    "the cinematography",
    "the pacing",
    "the editing",
    "the humor",
    "the special effects",
    "the characters",
    "the final act",
    "the first half",
    "the second half",
    "the love story",
    "the action scenes",
    "the set design",
    "the costumes",
    "the supporting cast",
    "the writing",
    "the twist",
]
FILM = [
    "this movie",
    "this film",
    "the movie",
    "the film",
    "this picture",
    "this sequel",
    "this comedy",
    "this drama",
    "this thriller",
    "this horror film",
    "this cartoon",
    "this documentary",
    "this remake",
    "this western",
    "this musical",
]
POS_ADJ = [
    "wonderful",
    "brilliant",
    "charming",
    "moving",
    "beautiful",
    "clever",
    "funny",
    "delightful",
    "gripping",
    "excellent",
    "superb",
    "warm",
    "fresh",
    "smart",
    "touching",
    "lovely",
    "great",
    "fantastic",
    "thrilling",
    "strong",
    "memorable",
    "inspired",
]
NEG_ADJ = [
    "boring",
    "dull",
    "awful",
    "weak",
    "clumsy",
    "silly",
    "flat",
    "terrible",
    "bland",
    "messy",
    "tedious",
    "painful",
    "lazy",
    "forgettable",
    "confusing",
    "stiff",
    "bad",
    "poor",
    "annoying",
    "predictable",
    "cheap",
    "slow",
]
INTENS = [
    "very",
    "really",
    "truly",
    "quite",
    "so",
    "rather",
    "pretty",
    "simply",
    "a little",
    "often",
    "always",
    "mostly",
]
POS_VERB = ["loved", "enjoyed", "liked", "adored", "admired", "appreciated"]
NEG_VERB = ["hated", "disliked", "could not stand", "regretted", "was bored by", "did not enjoy"]
PEOPLE = [
    "my wife",
    "my husband",
    "my friends",
    "my kids",
    "my brother",
    "my sister",
    "the whole family",
    "my parents",
    "everyone in the theater",
    "the audience",
    "my date",
]
TIME = [
    "last night",
    "on Friday",
    "over the weekend",
    "with a friend",
    "at the cinema",
    "on a rainy day",
    "on a long flight",
    "at home",
    "twice",
    "on opening night",
]
POS_END = [
    "I would watch it again.",
    "Highly recommended.",
    "Go and see it.",
    "It is one of the best films of the year.",
    "Ten out of ten.",
    "I can not wait for the next one.",
    "A real treat.",
    "Worth every minute.",
    "Do not miss it.",
    "It made my day.",
]
NEG_END = [
    "I would not watch it again.",
    "Skip this one.",
    "Save your money.",
    "It is one of the worst films of the year.",
    "Two out of ten.",
    "I want those two hours back.",
    "What a waste of time.",
    "Not worth the ticket.",
    "Avoid it.",
    "I almost fell asleep.",
]
MIX_END = [
    "It is worth a look if you are patient.",
    "Five out of ten.",
    "Wait until it comes out on TV.",
    "Fans may enjoy it, others may not.",
    "It is fine for a quiet night in.",
    "Not great, not terrible.",
    "I have mixed feelings about it.",
    "Some of it works and some of it does not.",
]


PLURAL = {"the characters", "the action scenes", "the special effects", "the costumes"}


def _be(subject: str, present: bool = False) -> str:
    """The verb "to be" that agrees with `subject`."""
    if subject in PLURAL:
        return "are" if present else "were"
    return "is" if present else "was"


def _adj(rng: random.Random, pool: list[str]) -> str:
    word = rng.choice(pool)
    return f"{rng.choice(INTENS)} {word}" if rng.random() < 0.4 else word


def _opinion(rng: random.Random, positive: bool) -> str:
    """One sentence with a clear opinion."""
    adj = POS_ADJ if positive else NEG_ADJ
    verb = POS_VERB if positive else NEG_VERB
    subject = rng.choice(SUBJECTS)
    film = rng.choice(FILM)
    forms = [
        lambda: f"{subject.capitalize()} {_be(subject)} {_adj(rng, adj)}.",
        lambda: (
            f"{subject.capitalize()} {_be(subject, True)} {_adj(rng, adj)} and {_adj(rng, adj)}."
        ),
        lambda: f"I {rng.choice(verb)} {subject} in {film}.",
        lambda: f"I {rng.choice(verb)} {film}.",
        lambda: f"I thought {subject} {_be(subject)} {_adj(rng, adj)}.",
        lambda: f"I watched {film} {rng.choice(TIME)} and it was {_adj(rng, adj)}.",
        lambda: f"{rng.choice(PEOPLE).capitalize()} {rng.choice(verb)} it.",
        lambda: f"What a {rng.choice(adj)} film.",
        lambda: f"{film.capitalize()} has a {rng.choice(adj)} story and {_adj(rng, adj)} acting.",
        lambda: (
            f"The best part is that {subject} {_be(subject, True)} {_adj(rng, adj)}."
            if positive
            else f"The worst part is that {subject} {_be(subject, True)} {_adj(rng, adj)}."
        ),
        lambda: f"From start to finish, {film} feels {_adj(rng, adj)}.",
        lambda: f"It was {_adj(rng, adj)} to see {subject} on the big screen.",
    ]
    return rng.choice(forms)()


def _mixed(rng: random.Random) -> str:
    """One sentence that holds both opinions."""
    first_pos = rng.random() < 0.5
    a = rng.choice(SUBJECTS)
    b = rng.choice([s for s in SUBJECTS if s != a])
    good, bad = _adj(rng, POS_ADJ), _adj(rng, NEG_ADJ)
    x, y = (good, bad) if first_pos else (bad, good)
    forms = [
        f"{a.capitalize()} {_be(a)} {x}, but {b} {_be(b)} {y}.",
        f"{a.capitalize()} {_be(a, True)} {x}, while {b} {_be(b, True)} {y}.",
        f"Although {a} {_be(a)} {x}, {b} felt {y}.",
        f"I liked {a} but not {b}." if first_pos else f"I liked {b} but not {a}.",
        f"It starts {x} and ends {y}.",
    ]
    return rng.choice(forms)


def review(rng: random.Random) -> str:
    """A review of two to five sentences: positive, negative or mixed, in equal parts."""
    kind = rng.choice(["pos", "neg", "mix"])
    n = rng.randint(1, 4)
    if kind == "mix":
        sents = [
            _opinion(rng, rng.random() < 0.5) if rng.random() < 0.5 else _mixed(rng)
            for _ in range(n)
        ]
        sents.append(rng.choice(MIX_END))
    else:
        positive = kind == "pos"
        sents = [_opinion(rng, positive) for _ in range(n)]
        sents.append(rng.choice(POS_END if positive else NEG_END))
    return " ".join(sents)


def corpus(n: int, seed: int = 0) -> list[str]:
    """`n` reviews drawn with `random.Random(seed)`."""
    rng = random.Random(seed)
    return [review(rng) for _ in range(n)]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print("\n".join(corpus(a.n, a.seed)))
