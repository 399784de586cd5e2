"""Write the bundled natural-language task data: `gym_textgen/tasks/data/{summarize,translate,dialogue}.jsonl`.

    python scripts/make_task_data.py        # seconds; the output is committed

Every item comes from templates and word lists written for this repository (MIT licence), drawn
with a fixed seed, so the data is exact (every reference is right by construction), offline and
reproducible. Each line is `{"prompt", "reference", "split"}`; items are distinct within a task and
the held-out items (32 "test", then 28 "validation") draw on held-out events, nouns and exchanges,
so their content is never trained on. Provenance goes to `data/README.md` beside them.

- summarize: a four-sentence local-news passage (the event first, then details, a quote and a
  reaction) -> a one-sentence summary of the event.
- translate: a simple English sentence -> its French translation (articles, gender agreement,
  elision and adjective order handled by the templates).
- commongen (CommonGen-style): three everyday concepts -> a sentence that uses them all; the
  reference is the concept list.
- dialogue: a short exchange between two people -> the next turn; the reference is one good
  reply (the task's reward does not need it: it mixes relevance, fluency and length).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "gym_textgen" / "tasks" / "data"
N_TRAIN, N_EVAL = 240, 60
N_TEST = 32  # of the N_EVAL held-out items: the test split; the other 28 are validation

# -- summarize ---------------------------------------------------------------------------------
TOWNS = "Millbrook Ashford Riverton Oakdale Kingsley Brookfield Fairview Westham Elmstead Northgate".split()
NAMES = "Anna Ben Clara David Emma Farid Grace Hugo Ines Jack Kofi Lena Maya Noah Omar Priya Rosa Sam".split()
EVENTS = [  # (what happened, detail about it, who it helps)
    ("opened a new library", "It has space for twenty thousand books and a reading room for children", "students"),
    ("built a bridge over the river", "The bridge is wide enough for bicycles and two lanes of cars", "commuters"),
    ("started a weekly farmers' market", "More than thirty farmers sell fruit, bread and cheese every Saturday", "local farmers"),
    ("planted five hundred trees", "Volunteers worked for three weekends to plant oaks and maples along the main road", "families"),
    ("opened a free swimming pool", "The pool is open every day from early morning until nine in the evening", "children"),
    ("launched a new bus line", "Buses now run every fifteen minutes between the station and the hospital", "older residents"),
    ("repaired the old town hall", "Workers replaced the roof and painted the walls in their original colours", "visitors"),
    ("opened a community garden", "Each family can grow vegetables on a small plot for a few pounds a year", "families"),
    ("held its first film festival", "Twelve short films made by local students were shown over two nights", "young film makers"),
    ("installed solar panels on every school", "The panels are expected to cover half of the schools' electricity", "schools"),
    ("opened a bicycle repair shop run by volunteers", "Anyone can bring a broken bicycle and learn to fix it for free", "cyclists"),
    ("cleaned up the beach", "Two hundred people collected more than a ton of plastic in one day", "swimmers"),
]  # fmt: skip
ROLES = ["the mayor", "a teacher", "a shop owner", "a local nurse", "the head of the council"]
DAYS = ["on Monday", "on Tuesday", "last week", "on Saturday", "this month", "in the spring"]
REACTIONS = [
    "Many people came to see it on the first day.",
    "Some residents said it should have happened years ago.",
    "Local newspapers called it the best news of the year.",
    "A few people worried about the cost, but most were pleased.",
    "Children from the nearby school were the first to try it.",
]


def summarize_item(rng: random.Random, split: str) -> tuple[str, str]:
    town, name, role = rng.choice(TOWNS), rng.choice(NAMES), rng.choice(ROLES)
    what, detail, helped = rng.choice(EVENTS[:10] if split == "train" else EVENTS[10:])
    day = rng.choice(DAYS)
    passage = (
        f"The town of {town} {what} {day}. {detail}. "
        f'"This will make a real difference for {helped}," said {name}, {role}. '
        f"{rng.choice(REACTIONS)}"
    )
    summary = f"{town} {what}, which {name} says will help {helped}."
    return f"Summarize in one sentence: {passage}", summary


# -- translate (English -> French) -------------------------------------------------------------
NOUNS = [  # (english, french, gender m/f)
    ("cat", "chat", "m"), ("dog", "chien", "m"), ("house", "maison", "f"), ("car", "voiture", "f"),
    ("book", "livre", "m"), ("table", "table", "f"), ("garden", "jardin", "m"), ("door", "porte", "f"),
    ("tree", "arbre", "m"), ("flower", "fleur", "f"), ("bird", "oiseau", "m"), ("window", "fenêtre", "f"),
    ("apple", "pomme", "f"), ("bicycle", "vélo", "m"), ("chair", "chaise", "f"), ("shirt", "chemise", "f"),
    ("hat", "chapeau", "m"), ("cup", "tasse", "f"), ("horse", "cheval", "m"), ("ball", "balle", "f"),
]  # fmt: skip
ADJECTIVES = [  # (english, french masculine, french feminine); all follow the noun in French
    ("red", "rouge", "rouge"), ("blue", "bleu", "bleue"), ("green", "vert", "verte"),
    ("black", "noir", "noire"), ("white", "blanc", "blanche"), ("small", "petit", "petite"),
]  # fmt: skip
PLACES = [  # (english, french with its article and preposition)
    ("in the kitchen", "dans la cuisine"), ("in the garden", "dans le jardin"),
    ("near the window", "près de la fenêtre"), ("under the table", "sous la table"),
    ("on the bed", "sur le lit"), ("behind the house", "derrière la maison"),
]  # fmt: skip
SUBJECTS = [
    ("I", "je", "vois", "see"),
    ("We", "nous", "voyons", "see"),
    ("She", "elle", "voit", "sees"),
]
VOWELS = tuple("aeiouhéè")


def definite(noun: str, gender: str) -> str:
    if noun.startswith(VOWELS):
        return f"l'{noun}"
    return f"{'le' if gender == 'm' else 'la'} {noun}"


def adjective_phrase(fr_noun: str, gender: str, adj: tuple[str, str, str]) -> str:
    """`noun adjective`, except `petit(e)`, which goes before the noun."""
    fr_adj = adj[1] if gender == "m" else adj[2]
    return f"{fr_adj} {fr_noun}" if adj[0] == "small" else f"{fr_noun} {fr_adj}"


def translate_item(rng: random.Random, split: str) -> tuple[str, str]:
    en, fr, g = rng.choice(NOUNS[:16] if split == "train" else NOUNS[16:])
    adj = rng.choice(ADJECTIVES)
    kind = rng.randrange(3)
    if kind == 0:  # The red car is in the garden.
        place_en, place_fr = rng.choice(PLACES)
        phrase = adjective_phrase(fr, g, adj)
        art = "l'" if phrase.startswith(VOWELS) else ("le " if g == "m" else "la ")
        english = f"The {adj[0]} {en} is {place_en}."
        french = f"{art}{phrase} est {place_fr}.".capitalize()
    elif kind == 1:  # I see a red car.
        subj_en, subj_fr, verb_fr, verb_en = rng.choice(SUBJECTS)
        art = "un" if g == "m" else "une"
        english = f"{subj_en} {verb_en} a {adj[0]} {en}."
        french = f"{subj_fr.capitalize()} {verb_fr} {art} {adjective_phrase(fr, g, adj)}."
    else:  # The car is red.
        english = f"The {en} is {adj[0]}."
        french = f"{definite(fr, g)} est {adj[1] if g == 'm' else adj[2]}.".capitalize()
    return f"Translate to French: {english}", french


# -- dialogue ----------------------------------------------------------------------------------
EXCHANGES = [  # (opening line, answer, follow-up question, a good reply)
    ("Did you see the new film at the cinema?", "Yes, I went on Friday with my sister.", "What did you think of it?", "I loved the music, but the story was a little slow."),
    ("Are you coming to the market tomorrow?", "I might, what time are you going?", "Around nine, before it gets busy.", "Nine works for me, let's meet at the bakery."),
    ("How was your trip to the mountains?", "It was cold, but the views were amazing.", "Did you manage to climb to the top?", "We did, although it took us almost five hours."),
    ("Have you finished the book I gave you?", "Almost, I have two chapters left.", "Do you like the ending so far?", "I think I know who did it, but I am not sure yet."),
    ("Is it going to rain this afternoon?", "The forecast says it might.", "Should we move the picnic indoors?", "Yes, let's have it in the kitchen and open the windows."),
    ("Can you help me move the sofa on Sunday?", "Sure, how heavy is it?", "It is quite heavy, we will need three people.", "I will ask my brother to come and help too."),
    ("What are you cooking tonight?", "I was thinking of a vegetable soup.", "Do you need anything from the shop?", "Some bread and a few carrots would be great, thank you."),
    ("Did you hear about the new bus line?", "No, where does it go?", "From the station straight to the hospital.", "That will save my mother a long walk every week."),
    ("Why were you late this morning?", "My bicycle had a flat tyre.", "Did you manage to fix it?", "Not yet, I will take it to the repair shop after work."),
    ("Are you watching the match tonight?", "Of course, I would not miss it.", "Who do you think will win?", "I hope our team wins, but the other side is very strong."),
    ("How is your new job going?", "Busy, but I am learning a lot.", "Are your colleagues friendly?", "Very friendly, they helped me a lot in the first week."),
    ("Shall we paint the kitchen this weekend?", "Good idea, what colour do you want?", "Maybe a light yellow?", "Light yellow sounds lovely, it will make the room brighter."),
    ("Where did you buy those shoes?", "At the small shop next to the post office.", "Were they expensive?", "Not at all, they were on sale for half the price."),
    ("Do you want to go for a walk by the lake?", "I would love to, is it warm outside?", "A bit windy, so bring a jacket.", "Good idea, I will bring a scarf as well."),
    ("Have you seen my keys anywhere?", "I think you left them on the table.", "I looked there, they are not there.", "Then check the pocket of your coat by the door."),
    ("Are you ready for the exam on Friday?", "Not really, I still have a lot to read.", "Do you want to study together tonight?", "Yes, that would help, let's meet at the library at six."),
    ("Did the plumber come to fix the sink?", "He came this morning.", "Is it working now?", "It works, and he said the pipes are in good shape."),
    ("What should we get Maria for her birthday?", "She likes plants and books.", "How about a book about gardening?", "That is perfect, I will wrap it with a small plant."),
    ("Is the new cafe on the corner any good?", "The coffee is excellent.", "And the cakes?", "The lemon cake is the best I have had in years."),
    ("Did you call your grandmother yesterday?", "Yes, we talked for an hour.", "How is she feeling?", "Much better, she even went for a short walk in the park."),
]  # fmt: skip
PAIRS = [("Anna", "Ben"), ("Clara", "David"), ("Emma", "Farid"), ("Grace", "Hugo"), ("Ines", "Jack"),
         ("Kofi", "Lena"), ("Maya", "Noah"), ("Omar", "Priya"), ("Rosa", "Sam")]  # fmt: skip


def dialogue_item(rng: random.Random, split: str) -> tuple[str, str]:
    a, b = rng.choice(PAIRS)
    if rng.random() < 0.5:
        a, b = b, a
    first, answer, follow, reply = rng.choice(
        EXCHANGES[:16] if split == "train" else EXCHANGES[16:]
    )
    prompt = f"{a}: {first}\n{b}: {answer}\n{a}: {follow}\n{b}:"
    return prompt, f" {reply}"


# -- commongen (CommonGen-style) ------------------------------------------------------------
CONCEPT_NOUNS = (
    "dog ball park kitchen bread river boat garden cat tree book window rain bicycle road "
    "table coffee beach sand child teacher market apple horse field train station snow "
    "mountain friend guitar song door key letter phone cake oven shop street bridge"
).split()
CONCEPT_VERBS = (
    "throw cook swim read walk play open bake ride sing paint climb wash carry jump".split()
)
HELD_OUT = set(CONCEPT_NOUNS[-8:]) | set(CONCEPT_VERBS[-4:])


def commongen_item(rng: random.Random, split: str) -> tuple[str, list[str]]:
    nouns = [w for w in CONCEPT_NOUNS if w not in HELD_OUT]
    verbs = [w for w in CONCEPT_VERBS if w not in HELD_OUT]
    if split == "train":
        concepts = [*rng.sample(nouns, 2), rng.choice(verbs)]
    else:  # at least one concept never seen in training
        held_nouns = [w for w in CONCEPT_NOUNS if w in HELD_OUT]
        held_verbs = [w for w in CONCEPT_VERBS if w in HELD_OUT]
        concepts = [rng.choice(held_nouns), rng.choice(nouns), rng.choice(held_verbs + verbs)]
    rng.shuffle(concepts)
    return f"Write one sentence that uses the words: {', '.join(concepts)}.", concepts


def build(make, seed: int) -> list[dict]:
    """N_TRAIN then N_EVAL distinct items; the held-out items come from held-out slot values
    (events, nouns, exchanges), so no held-out prompt's content is trained on. The first
    N_TEST held-out items are the test split (suite v1 scored them), the others validation."""
    rng = random.Random(seed)
    out = []
    for split, n in (("train", N_TRAIN), ("eval", N_EVAL)):
        seen: dict[str, Any] = {}
        for _ in range(100_000):
            prompt, reference = make(rng, split)
            seen.setdefault(prompt, reference)
            if len(seen) == n:
                break
        else:
            raise RuntimeError(f"{make.__name__}: only {len(seen)} distinct {split} items")
        for i, (p, r) in enumerate(seen.items()):
            named = split if split == "train" else "test" if i < N_TEST else "validation"
            out.append({"prompt": p, "reference": r, "split": named})
    return out


def main(out: Path = OUT) -> None:
    makers = {"summarize": summarize_item, "translate": translate_item, "dialogue": dialogue_item,
              "commongen": commongen_item}  # fmt: skip
    for name, make in makers.items():
        items = build(make, seed=0)
        path = Path(out) / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items), encoding="utf-8"
        )
        print(f"{path}: {len(items)} items")


if __name__ == "__main__":
    main()
