"""Bundled interactive tasks: an other party answers the policy's turns (`gym_textgen.interactive`).

| task | the other party | reward |
| --- | --- | --- |
| `token_code` | after the policy's first turn: "The code is 2." | the share of the second turn's ids = 2 mod 4 |
| `guess_number` | "Higher." / "Lower." to a guess of a secret from 1 to 16 | 1 - (turns - 1) / 6 for finding it |
| `calculator` | runs `<calc>12*(3+4)</calc>` and answers `<result>84</result>` | 1 if the final answer is right |
| `calculator_no_tool` | (single turn: the same questions, no tool) | 1 if the answer is right |

`token_code` isolates credit across turns: the reward depends on a code that exists only in the
other party's reply (a policy that ignores it earns 0.25 on average, whatever it writes). The
eval instances of every task are kept out of training.

>>> from gym_textgen.tasks.interactive import token_code_task
>>> task = token_code_task()
>>> task.interaction.max_turns, len(task.prompts), len(task.eval_prompts)
(2, 24, 8)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from gym_textgen.errors import TextGenValueError
from gym_textgen.interactive import Exchange, Interaction, OtherParty, Reply, ToolParty
from gym_textgen.tasks.task import Task

_CODE_PROMPTS = (
    "Wait for my code, from 0 to 3, then write tokens of that kind.",
    "I will give you a code (0, 1, 2 or 3). Answer with tokens of that code.",
    "First say anything. Then I name a code and you write tokens that match it.",
    "Listen for the code and write in it.",
    "A code game: hear the code, then use it.",
    "Say ok. My next message names a code from 0 to 3; follow it.",
    "Get the code from me, then write tokens of that code.",
    "Your second turn must follow the code I give you.",
)
#: the validation split's phrasings (never trained on, never tested on)
_CODE_VALIDATION_PROMPTS = (
    "I am about to name a code between 0 and 3. Write tokens of it when I do.",
    "Say something first; after my code, every token should follow it.",
)
N_CODES = 4


class TokenCodeParty(OtherParty):
    """Names the instance's code (its reference, 0 to 3) after the policy's first turn, then
    pays the second turn the share of its token ids that equal the code modulo 4, and ends."""

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        out = []
        for ex in exchanges:
            if ex.reference not in range(N_CODES) or isinstance(ex.reference, bool):
                raise TextGenValueError(
                    f"token_code expects the instance's code (0-{N_CODES - 1}) as its reference, "
                    f"got {ex.reference!r} (a forced prompt needs options['reference'])"
                )
            if len(ex.policy_turns) == 1:
                out.append(Reply(f"The code is {ex.reference}."))
            else:
                turn = ex.ids[-1]
                share = sum(i % N_CODES == ex.reference for i in turn) / max(1, len(turn))
                out.append(Reply("Done.", done=True, reward=float(share)))
        return out


def _splits(train: list, held: list, validation: list) -> dict[str, tuple]:
    """A task's prompts and references from (prompt, reference) pairs: training, held-out test
    and held-out validation."""
    return dict(
        prompts=tuple(p for p, _ in train),
        eval_prompts=tuple(p for p, _ in held),
        validation_prompts=tuple(p for p, _ in validation),
        references=tuple(r for _, r in train),
        eval_references=tuple(r for _, r in held),
        validation_references=tuple(r for _, r in validation),
    )


def _held_out(items: list, n_eval: int, seed: int) -> tuple[list, list]:
    """(`n_eval` items drawn at random for evaluation, the rest for training)."""
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order[:n_eval]], [items[i] for i in order[n_eval:]]


def token_code_task(n_eval_prompts: int = 2) -> Task:
    """Two turns: anything, then tokens of the code (0-3) the other party names in between,
    paid for the share of the second turn's ids that equal the code modulo 4.

    A policy that ignores the reply earns 0.25 on average whatever it writes (any residue is
    right for one code in four); only reading the inserted reply earns more: credit across
    turns, isolated. The eval split's phrasings are never trained on."""
    items = [(p, code) for p in _CODE_PROMPTS for code in range(N_CODES)]
    cut = (len(_CODE_PROMPTS) - n_eval_prompts) * N_CODES
    validation = [(p, code) for p in _CODE_VALIDATION_PROMPTS for code in range(N_CODES)]
    return Task(
        name="token_code",
        **_splits(items[:cut], items[cut:], validation),
        scorer="none",
        template="{prompt}\n",
        description="interactive, synthetic: after your first turn the other party names a "
        "code; your second turn is paid for tokens of it (credit across turns)",
        max_prompt_tokens=64,
        chat=True,
        interaction=Interaction(
            TokenCodeParty(),
            max_turns=2,
            max_turn_tokens=6,
            max_reply_tokens=32,
            turn_ends=(),
            reply_template="{reply}\n",
        ),  # fmt: skip
    )


_GUESS_PROMPTS = (
    "I am thinking of a number from 1 to 16. Guess it; I will say higher or lower. Reply with "
    "only a number.",
    "Guess my secret number between 1 and 16. Reply with just the number; I will say higher or "
    "lower.",
    "Find my number (1 to 16). Answer with one number each time; I say higher or lower.",
)
#: the validation split's phrasing (with every secret)
_GUESS_VALIDATION_PROMPT = (
    "Guess which number from 1 to 16 I picked. Say one number; I answer higher or lower."
)
_NUMBER = re.compile(r"-?\d+")


class GuessParty(OtherParty):
    """Answers a guess of the secret (the reference) with "Higher." or "Lower."; finding it ends
    the episode and pays 1 - (guesses - 1) / max_turns. A turn without a number in range gets a
    reminder."""

    def __init__(self, low: int = 1, high: int = 16, max_turns: int = 6) -> None:
        self.low, self.high, self.max_turns = low, high, max_turns

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        out = []
        for ex in exchanges:
            if not isinstance(ex.reference, int) or not self.low <= ex.reference <= self.high:
                raise TextGenValueError(
                    f"guess_number expects the secret ({self.low}-{self.high}) as its reference, "
                    f"got {ex.reference!r} (a forced prompt needs options['reference'])"
                )
            found = _NUMBER.search(ex.last)
            guess = int(found.group()) if found else None
            if guess is None or not self.low <= guess <= self.high:
                out.append(Reply(f"Say a number from {self.low} to {self.high}."))
            elif guess == ex.reference:
                turns = len(ex.policy_turns)
                out.append(Reply("Correct!", done=True, reward=1 - (turns - 1) / self.max_turns))
            else:
                out.append(Reply("Higher." if guess < ex.reference else "Lower."))
        return out


def guess_number_task(high: int = 16, max_turns: int = 6, n_eval: int = 12, seed: int = 0) -> Task:
    """Find a secret number from 1 to `high` from higher/lower replies, in `max_turns` guesses."""
    items = [(p, n) for n in range(1, high + 1) for p in _GUESS_PROMPTS]
    validation = [(_GUESS_VALIDATION_PROMPT, n) for n in range(1, high + 1)]
    if high != 16:
        items = [(p.replace("16", str(high)), n) for p, n in items]
        validation = [(p.replace("16", str(high)), n) for p, n in validation]
    held, kept = _held_out(items, n_eval, seed)
    return Task(
        name="guess_number",
        **_splits(kept, held, validation),
        scorer="none",
        template="{prompt}\nGuess:",
        description="interactive: find a secret number from higher/lower replies; reward = 1 - "
        "(guesses - 1) / max_turns for finding it",
        max_prompt_tokens=64,
        # a plain transcript, not a chat: SmolLM2-Instruct chats ("You're not quite...") in a
        # chat frame, and guesses numbers in this one (success 19% untrained, 16% in the chat)
        chat=False,
        interaction=Interaction(
            GuessParty(1, high, max_turns),
            max_turns=max_turns,
            max_turn_tokens=4,
            max_reply_tokens=32,
            reply_template=" {reply}\nGuess:",
        ),  # fmt: skip
    )


TOOL_HINT = "You have a calculator: write <calc>expression</calc> and read its result."
# One worked example in each version's prompt (the same question; never among the task's own), in
# a plain transcript: untrained SmolLM2 answers 19% of 64 held-out questions right with the tool
# this way, and none without the example or in a chat frame (where it chats instead).
EXAMPLE = ("What is 23 * 41?", "943")
TOOL_TEMPLATE = (
    f"{TOOL_HINT}\nQuestion: {EXAMPLE[0]}\nAnswer:<calc>23*41</calc><result>943</result>\n"
    f"Answer: {EXAMPLE[1]}\nQuestion: {{prompt}}\nAnswer:"
)
NO_TOOL_TEMPLATE = f"Question: {EXAMPLE[0]}\nAnswer: {EXAMPLE[1]}\nQuestion: {{prompt}}\nAnswer:"


def _questions(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` distinct two-digit products and three-digit sums: hard to do in one's head."""
    rng = np.random.default_rng(seed)
    items: dict[str, str] = {EXAMPLE[0]: EXAMPLE[1]}  # taken: the prompts' worked example
    while len(items) < 1 + n:
        if rng.random() < 0.5:
            a, b = (int(x) for x in rng.integers(12, 100, 2))
            items.setdefault(f"What is {a} * {b}?", str(a * b))
        else:
            a, b = (int(x) for x in rng.integers(100, 1000, 2))
            items.setdefault(f"What is {a} + {b}?", str(a + b))
    return list(items.items())[1:]


def calculator_task(
    n_train: int = 512, n_eval: int = 64, tool: bool = True, seed: int = 0, n_validation: int = 64
) -> Task:
    """Arithmetic questions with a calculator tool (`tool=False`: the same questions, one
    turn, no tool, for comparison); reward: the final answer's first number is right. The
    training, test and validation questions are drawn in that order from one stream."""
    qa = _questions(n_train + n_eval + n_validation, seed)
    questions, answers = [q for q, _ in qa], [a for _, a in qa]
    a, b = n_train, n_train + n_eval
    common = dict(
        prompts=tuple(questions[:a]),
        eval_prompts=tuple(questions[a:b]),
        validation_prompts=tuple(questions[b:]),
        references=tuple(answers[:a]),
        eval_references=tuple(answers[a:b]),
        validation_references=tuple(answers[b:]),
        scorer="numeric",
        # the worked example and a question: 111 default tokens at most (78 of SmolLM2's); 120
        # makes the state 256 tokens, the default model's context
        max_prompt_tokens=120,
        chat=False,
    )
    if not tool:
        return Task(name="calculator_no_tool", template=NO_TOOL_TEMPLATE,
                    description="the calculator task's questions, answered in one turn",
                    max_new_tokens=12, **common)  # fmt: skip
    return Task(
        name="calculator",
        template=TOOL_TEMPLATE,
        description="interactive: answer arithmetic questions, with a calculator tool to call",
        interaction=Interaction(
            ToolParty(max_calls=2),
            max_turns=3,
            max_turn_tokens=24,  # "<calc>560+342</calc>" is 18 tokens of the default tokenizer
            max_reply_tokens=32,
            turn_ends=("</calc>", "\n"),
            reply_template="{reply}\nAnswer:",
        ),  # fmt: skip
        **common,
    )


# -- a dialogue with a simulated user ------------------------------------------------------------
FILM_OPENINGS = (
    "Hi! Can you recommend a film for tonight?",
    "I want to watch a film tonight. Any ideas?",
    "Could you suggest a movie for me?",
    "Help me pick a film to watch.",
    "What film should I watch this evening?",
    "Recommend me a movie, please.",
)
#: the validation split's openings (with every genre)
FILM_VALIDATION_OPENINGS = (
    "Any good film you could suggest for tonight?",
    "I'd like a movie recommendation.",
)
#: genre -> the stem that names it in a recommendation ("comedies", "a comedy"): the genres a
#: 135M user names when asked (documentary, science fiction, adventure, musical: SmolLM2 answers
#: "horror", "sci-fi", "action" or "romantic comedies" for them; measured, see film_request_task)
GENRES = {
    "comedy": "comed",
    "horror": "horror",
    "romance": "roman",
    "western": "western",
    "thriller": "thriller",
    "mystery": "myster",
    "crime": "crime",
    "action": "action",
}
#: one worked exchange, in a genre the task never asks for: with it and the frame's "I recommend
#: a" untrained SmolLM2 earns 0.16 (0.02 with neither; BENCHMARKS.md, "film_request")
FILM_TEMPLATE = (
    "User: Can you recommend a film?\nAssistant: What kind of films do you like?\n"
    "User: I like animated films.\nAssistant: I recommend an animated film, Spirited Away.\n"
    "User: {prompt}\nAssistant:"
)
#: the user's side as a plain transcript with a worked exchange (`LMUser(chat=False)`). Measured
#: on SmolLM2-135M, greedy, the 8 genres x 3 openings: asked "What kind of films do you like?",
#: "What genre do you like?" or "What do you like?", 66 of 72 replies name the genre and no
#: other ("I like crime films."); not asked ("Sure!", or noise), 14 of 48 ("I'd love to see a
#: movie.", "I'm looking for a film about a detective.").
FILM_PERSONA = (
    "A user who wants to watch a {genre} film talks with an assistant.\n"
    "User: Can you recommend a film?\nAssistant: What kind of films do you like?\n"
    "User: I like {genre} films.\nAssistant: Here is one.\nUser: Thanks!"
)


def genres_named(text: str) -> set[str]:
    """The genres `text` names (by stem, case-insensitive)."""
    low = text.lower()  # from a word's start: "reaction" names no action film
    return {genre for genre, stem in GENRES.items() if re.search(rf"\b{stem}", low)}


class FilmRequestParty(OtherParty):
    """The user of `film_request`: `user` (a simulated user, by default SmolLM2 playing the
    persona) answers the policy's first turn; the second turn is the recommendation, paid 1 when
    it names the user's genre and no other."""

    def __init__(self, user: OtherParty) -> None:
        self.user = user

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        out: list[Reply | None] = [None] * len(exchanges)
        asks = [i for i, ex in enumerate(exchanges) if len(ex.policy_turns) == 1]
        for i, reply in zip(asks, self.user.reply([exchanges[i] for i in asks]), strict=True):
            out[i] = reply
        for i, ex in enumerate(exchanges):
            if out[i] is None:
                want = ex.reference["genre"] if isinstance(ex.reference, dict) else None
                if want not in GENRES:
                    raise TextGenValueError(
                        f"film_request expects a reference {{'genre': one of {list(GENRES)}}}, "
                        f"got {ex.reference!r} (a forced prompt needs options['reference'])"
                    )
                out[i] = Reply("", done=True, reward=float(genres_named(ex.last) == {want}))
        return out  # type: ignore[return-value]


def film_request_task(user: OtherParty | None = None, n_eval: int = 12, seed: int = 0) -> Task:
    """A goal-oriented dialogue: the user wants a film of a genre it says when asked; the
    policy has two turns (ask, then recommend) and is paid for naming the user's genre and no
    other. `user`: the simulated user (default: `LMUser("smollm2-135m")` reading the persona
    `FILM_PERSONA` and the conversation as a plain transcript, greedy, so that its replies are
    remembered by conversation, 12 tokens a reply)."""
    from gym_textgen.interactive import LMUser

    if user is None:
        user = LMUser("smollm2-135m", persona=FILM_PERSONA, temperature=0, max_reply_tokens=12,
                      chat=False)  # fmt: skip
    items = [(p, {"genre": g}) for g in GENRES for p in FILM_OPENINGS]
    validation = [(p, {"genre": g}) for g in GENRES for p in FILM_VALIDATION_OPENINGS]
    held, kept = _held_out(items, n_eval, seed)
    return Task(
        name="film_request",
        **_splits(kept, held, validation),
        scorer="none",
        template=FILM_TEMPLATE,
        description="interactive, a simulated user: ask which genre the user wants, then "
        "recommend a film of it (1 for naming its genre and no other)",
        max_prompt_tokens=96,  # the worked example and an opening: 77 default tokens at most
        chat=False,
        interaction=Interaction(
            FilmRequestParty(user),
            max_turns=2,
            max_turn_tokens=12,  # "What kind of films do you like?\n": 9 SmolLM2 tokens
            max_reply_tokens=32,
            # after the turn's "\n"; the recommendation's first words are the frame's
            reply_template="User: {reply}\nAssistant: I recommend a",
        ),  # fmt: skip
    )


__all__ = [
    "FilmRequestParty",
    "TokenCodeParty",
    "GuessParty",
    "film_request_task",
    "calculator_task",
    "token_code_task",
    "guess_number_task",
]
