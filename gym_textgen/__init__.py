"""gym-textgen: text generation as a Gymnasium environment.

Importing the package registers its environments:

| id | task | default scorer |
| --- | --- | --- |
| `TextGen-v0` | movie-review openings | `sentiment` (VADER, in [0, 1]) |
| `TextGenKeywords-v0` | movie-review openings | `keywords` (the prompt's required word) |
| `TextGenCommonGen-v0` | CommonGen-style concept sets | `keywords` (all three concepts, inflections count) |
| `TextGenTargetTokens-v0` | movie-review openings | `target_tokens` (synthetic, for fast tests) |
| `TextGenSummarize-v0` | short news passages | `rouge` (ROUGE-L to a reference summary) |
| `TextGenTranslate-v0` | simple English sentences | `chrf` (to the French reference) |
| `TextGenDialogue-v0` | short exchanges | similarity to the exchange + fluency + length |
| `TextGenCopy-v0` | `copy: red cat sun ->` (procedural) | `word_match` |
| `TextGenReverse-v0` | `reverse: red cat sun ->` (procedural) | `word_match` |
| `TextGenArithmetic-v0` | `12 + 35 =` (procedural) | `numeric` (exact answer) |
| `TextGenTokenCode-v0` | interactive, synthetic: follow the code the other party names | the party's (tokens of the code) |
| `TextGenGuessNumber-v0` | interactive: find a secret number, higher/lower replies | the party's (fewer guesses, more) |
| `TextGenCalculator-v0` | interactive: arithmetic with a calculator tool | `numeric` (exact answer) |
"""

from gymnasium.envs.registration import register, registry

from gym_textgen.envs import TextGenConfig, TextGenEnv, TextGenVectorEnv
from gym_textgen.errors import ScorerError, TextGenError, TextGenTypeError, TextGenValueError
from gym_textgen.models import list_models, load_model, load_tokenizer
from gym_textgen.scorers import list_scorers, make_scorer
from gym_textgen.tasks import Task, list_tasks, make_task

__version__ = "0.2.0"

ENV_IDS = {
    "TextGen-v0": {},
    "TextGenKeywords-v0": {"task": "keywords"},
    "TextGenCommonGen-v0": {"task": "commongen"},
    "TextGenTargetTokens-v0": {"task": "target_tokens"},
    "TextGenSummarize-v0": {"task": "summarize"},
    "TextGenTranslate-v0": {"task": "translate"},
    "TextGenDialogue-v0": {"task": "dialogue"},
    "TextGenCopy-v0": {"task": "copy"},
    "TextGenReverse-v0": {"task": "reverse"},
    "TextGenArithmetic-v0": {"task": "arithmetic"},
    "TextGenTokenCode-v0": {"task": "token_code"},
    "TextGenGuessNumber-v0": {"task": "guess_number"},
    "TextGenCalculator-v0": {"task": "calculator"},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        register(
            id=_id,
            entry_point="gym_textgen.envs:TextGenEnv",
            vector_entry_point="gym_textgen.envs:TextGenVectorEnv",
            kwargs=_kwargs,
        )

__all__ = [
    "ENV_IDS",
    "ScorerError",
    "Task",
    "TextGenConfig",
    "TextGenEnv",
    "TextGenError",
    "TextGenTypeError",
    "TextGenValueError",
    "TextGenVectorEnv",
    "list_models",
    "list_scorers",
    "list_tasks",
    "load_model",
    "load_tokenizer",
    "make_scorer",
    "make_task",
]
