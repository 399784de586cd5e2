"""The LLM judge (issue 12): a local LM's yes-probability and an OpenAI-compatible HTTP API,
the latter against a real local server process (tests/servers/fake_chat_api.py)."""

from __future__ import annotations

import json
import pickle
import socket

import gymnasium as gym
import numpy as np
import pytest
import torch

from gym_textgen.errors import ScorerError, TextGenValueError
from gym_textgen.models import load_model, load_tokenizer
from gym_textgen.scorers import make_scorer


@pytest.mark.parametrize("api", [("--key", "sk-test-123")], indirect=True)
def test_http_judge_rates_through_a_real_server_with_the_key_from_the_environment(api, monkeypatch):
    url, log = api
    monkeypatch.setenv("JUDGE_KEY", "sk-test-123")
    judge = make_scorer("judge", base_url=url, api_model="m", api_key_env="JUDGE_KEY")
    got = judge(["The film"] * 3, [" was great", " was dull", " great fun"])
    assert got.tolist() == [1.0, 0.0, 1.0]
    headers = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(headers) == 3 and all(h["Authorization"] == "Bearer sk-test-123" for h in headers)
    saved = pickle.dumps(judge)  # the key is read at request time, never stored
    assert b"sk-test-123" not in saved and "sk-test" not in repr(judge)
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(ScorerError, match="answered HTTP 401"):  # no key: no retry either
        judge(["p"], [" great"])


@pytest.mark.parametrize("api", [("--fail-first", "2")], indirect=True)
def test_http_judge_retries_busy_servers_with_backoff(api):
    url, log = api
    judge = make_scorer("judge", base_url=url, retries=3, backoff=0.01, concurrency=1)
    assert judge(["p"], [" great"]).tolist() == [1.0]
    assert len(log.read_text().splitlines()) == 3  # 503, 503, 200


def test_http_judge_names_an_unreachable_server():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = make_scorer("judge", base_url=f"http://127.0.0.1:{port}/v1", retries=2, backoff=0.01)
    with pytest.raises(ScorerError, match=rf"cannot reach http://127.0.0.1:{port}/v1/chat/"):
        judge(["p"], ["x"])


def test_an_unreachable_judge_loses_no_episode():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = gym.make(
        "TextGen-v0",
        max_new_tokens=2,
        scorer="judge",
        scorer_kwargs={"base_url": f"http://127.0.0.1:{port}/v1", "retries": 1},
    )
    env.reset(seed=0)
    env.step(10)
    with pytest.raises(ScorerError, match="cannot reach"):
        env.step(11)
    env.reset(seed=0)  # the env is still usable: a fresh episode starts cleanly


def tiny_lm(folder, text: list[str], vocab_size: int):
    """A tiny random Llama with a byte-level BPE tokenizer trained here on `text`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def yes_no_model(tmp_path_factory):
    """' yes', 'no', 'Yes', ... are single tokens of its tokenizer."""
    text = ["yes no Yes No", " yes no Yes No", "Is it kind? Prompt: Response: Answer: The film"]
    return tiny_lm(tmp_path_factory.mktemp("judge"), text * 50, 400)


def test_local_judge_is_the_yes_probability_of_the_next_token(yes_no_model):
    judge = make_scorer("judge", model=yes_no_model, rubric="Is it kind?")
    prompts, completions = ["The film", "A"], [" was lovely.", " bad"]
    got = judge(prompts, completions)
    model, tok = load_model(yes_no_model).double(), load_tokenizer(yes_no_model)

    def single(words):
        return sorted({tok(w, add_special_tokens=False)["input_ids"][0] for w in words})

    yes, no = single(("yes", " yes", "Yes", " Yes")), single(("no", " no", "No", " No"))
    assert len(yes) == 4 and len(no) == 4 and not set(yes) & set(no)
    for p, c, value in zip(prompts, completions, got, strict=True):
        text = f"Is it kind?\n\nPrompt: {p}\nResponse: {c}\n\nAnswer yes or no.\nAnswer:"
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            probs = model(input_ids=ids).logits[0, -1].softmax(-1)
        want = float(probs[yes].sum() / (probs[yes].sum() + probs[no].sum()))
        assert value == pytest.approx(want, rel=1e-4)  # float32 model, left padding in a batch
    one = [judge([p], [c])[0] for p, c in zip(prompts, completions, strict=True)]
    np.testing.assert_allclose(got, one, rtol=1e-4)


def test_a_judge_whose_tokenizer_cannot_say_yes_or_no_is_refused(tmp_path):
    folder = tiny_lm(tmp_path, ["The film was long and kind."] * 50, 270)  # bytes, few merges
    with pytest.raises(TextGenValueError, match="no single token for 'yes' or 'no'"):
        make_scorer("judge", model=folder)(["p"], ["x"])


REPLIES = {  # what judges write -> the rating's score (rating - 1) / 9
    "8/10": 7 / 9, "3 out of 10": 2 / 9, "Rating: 2/10": 1 / 9, "9": 8 / 9,
    "On a 1-10 scale: 9": 8 / 9, "I give it 7.": 6 / 9, "**Rating:** 6/10": 5 / 9,
    "10/10": 1.0, "7.5/10": 6.5 / 9, "From 1 to 10, a 3.": 2 / 9, "1": 0.0,
    "It has 3 sentences. Rating: 8": 7 / 9, "1. Fluent 2. Overall: 7": 6 / 9,
    "I'd rate it 8 out of 10.": 7 / 9, "Rating: 7/10 (a 10/10 is rare)": 6 / 9,
    "7 (out of 10)": 6 / 9, "4/5": 7 / 9, "Rating: 0": 0.0,
}  # fmt: skip


def test_http_judge_reads_realistic_replies_through_a_real_server(api):
    """A reply of "8/10" is a rating of 8 (it was read as 10, the last number from 1 to 10)."""
    url, _ = api
    judge = make_scorer("judge", base_url=url, concurrency=2)
    got = judge(["p"] * len(REPLIES), [f" say {reply}" for reply in REPLIES])
    np.testing.assert_allclose(got, list(REPLIES.values()), rtol=0, atol=1e-12)
    with pytest.raises(ScorerError, match="expected a rating from 1 to 10, got 'fine, I guess'"):
        judge(["p"], [" say fine, I guess"])


@pytest.mark.parametrize("api", [("--fail-first", "1", "--fault", "not-json"),
                                 ("--fail-first", "1", "--fault", "cut")], indirect=True)  # fmt: skip
def test_http_judge_retries_a_body_that_is_cut_short_or_not_json(api):
    url, log = api
    judge = make_scorer("judge", base_url=url, retries=2, backoff=0.01, concurrency=1)
    assert judge(["p"], [" great"]).tolist() == [1.0]
    assert len(log.read_text().splitlines()) == 2  # the faulty answer, then the good one


def test_http_judge_does_not_retry_an_invalid_url():
    judge = make_scorer("judge", base_url="http://localhost:80a/v1", retries=3, backoff=0.01)
    with pytest.raises(ScorerError, match=r"localhost:80a/v1/chat/completions is not a valid URL"):
        judge(["p"], ["x"])


def test_judge_arguments_are_checked():
    with pytest.raises(TextGenValueError, match="start with http:// or https://"):
        make_scorer("judge", base_url="localhost:8000")
    with pytest.raises(TextGenValueError, match="retries >= 1"):
        make_scorer("judge", retries=0)
