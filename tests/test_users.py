"""Simulated users (issue 26): a local LM playing a persona, an OpenAI-compatible endpoint (a
real local server process), and the film_request dialogue task."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import gym_textgen
from gym_textgen import TextGenEnv, TextGenVectorEnv
from gym_textgen.errors import TextGenValueError
from gym_textgen.interactive import (
    CallableParty,
    Exchange,
    HTTPUser,
    LMUser,
    PartyError,
    Reply,
)
from gym_textgen.tasks.interactive import FILM_PERSONA, film_request_task


def ex(turn: str, seed: int = 0, genre: str = "comedy") -> Exchange:
    return Exchange("Recommend a film?", {"genre": genre}, (turn,), seed=seed)


def write(env, text):
    ids = env.core.tokenizer.encode(text, add_special_tokens=False)
    return [env.step(a) for a in ids]


# -- the local LM user ---------------------------------------------------------------------------
def test_the_lm_user_replies_the_same_to_the_same_episode_whatever_the_batch():
    user = LMUser("default", persona=FILM_PERSONA, temperature=1.0, max_reply_tokens=8)
    batch = [ex("What do you like?", seed=s) for s in (0, 1, 2)]
    together = user.reply(batch)
    alone = [user.reply([e])[0] for e in batch]
    assert together == alone and user.reply(batch) == together
    assert len({r.text for r in together}) > 1  # seeds differ, so do the samples
    assert all(isinstance(r.text, str) and not r.done for r in together)


def test_the_lm_user_sees_the_persona_and_the_conversation_from_its_side():
    user = LMUser("default", persona="You want a {genre} film.")
    user._load()
    text = user.text_of(Exchange("Hi!", {"genre": "horror"}, ("Hello, what do you like?",), 0))
    # the default model has no chat template: a plain transcript, the user's lines as "User:"
    assert text == "You want a horror film.\nUser: Hi!\nAssistant: Hello, what do you like?\nUser:"
    assert pickle.loads(pickle.dumps(user))._lm is None  # the model is not pickled


def test_chat_false_shows_an_instruct_model_a_plain_transcript():
    from gym_textgen.models import load_tokenizer

    exchange = Exchange("Hi!", {"genre": "horror"}, ("What do you like?",), 0)
    user = LMUser("smollm2-135m", persona="You want a {genre} film.")
    user._tok = load_tokenizer("smollm2-135m")  # has a chat template: used by default
    assert user.text_of(exchange).startswith("<|im_start|>system\nYou want a horror film.")
    user.chat = False
    assert user.text_of(exchange) == (
        "You want a horror film.\nUser: Hi!\nAssistant: What do you like?\nUser:"
    )
    with pytest.raises(TypeError, match="chat as None, True or False, got 'no'"):
        LMUser(chat="no")


def test_a_greedy_user_decodes_a_conversation_once_and_replies_as_without_its_cache():
    batch = [ex("What do you like?"), ex("Which genre?"), ex("What do you like?", seed=5)]
    fresh = LMUser("default", persona=FILM_PERSONA, temperature=0, max_reply_tokens=6, cache_size=0)
    user = LMUser("default", persona=FILM_PERSONA, temperature=0, max_reply_tokens=6, cache_size=2)
    decoded = []
    user._load()
    generate = user.generate
    user.generate = lambda texts, seeds, **kw: decoded.extend(texts) or generate(texts, seeds, **kw)
    replies = user.reply(batch)
    # greedy: the seed is no part of the reply, so rows 0 and 2 are one conversation, decoded once
    assert len(decoded) == 2 and replies == fresh.reply(batch) and replies[0] == replies[2]
    assert user.reply([batch[1]]) == [replies[1]] and len(decoded) == 2  # remembered
    user.reply([ex("Tell me more.")])  # a third conversation evicts the least recently used
    assert len(user._cache) == 2 and user.reply([batch[0]]) == [replies[0]] and len(decoded) == 4
    assert LMUser(temperature=0.5, cache_size=8).cache_size == 0  # sampling: nothing to remember
    del user.generate
    assert not pickle.loads(pickle.dumps(user))._cache
    with pytest.raises(TextGenValueError, match="cache_size as an int >= 0, got -1"):
        LMUser(cache_size=-1)


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_a_plain_transcript_user_prefills_its_persona_once_and_replies_as_without(temperature):
    """Every reply of an instance starts with the persona and the opening: their keys and values
    are kept, and only the conversation after them is prefilled, with the same replies."""
    batch = [
        ex("What do you like?"),
        ex("Which genre, please?", seed=3),
        Exchange("Recommend a film?", {"genre": "comedy"}, ("Hm.", "Hm?", "So?"), seed=2),
    ]
    batch.append(
        Exchange(
            "A much longer opening line, for the film night we planned",
            {"genre": "crime"},
            ("Which?",),
            seed=1,
        )
    )
    settings = dict(persona=FILM_PERSONA, temperature=temperature, max_reply_tokens=6,
                    chat=False, cache_size=0)  # fmt: skip
    whole = LMUser("default", prefix_cache=0, **settings)
    kept = LMUser("default", prefix_cache=1, **settings)
    expected = whole.reply(batch)
    assert kept.reply(batch) == expected and kept.reply(batch[::-1]) == expected[::-1]
    assert len(kept._prefixes) == 1  # the least recently used instance went out
    texts = [kept.text_of(e) for e in batch]
    prefixes = [kept.prefix_of(e) for e in batch]
    assert all(t.startswith(p) for t, p in zip(texts, prefixes, strict=True))
    # what is prefilled: the conversation after the kept prefix, not the whole text; the next
    # token's logits are the whole text's (float32: 3e-6 apart, measured; a prefix padded on
    # the wrong side moves them by 0.1)
    import torch as th

    logits = []
    for starts in (prefixes, None):
        ids, mask, positions, cache = kept._start(texts, starts)
        logits.append(kept._lm(input_ids=ids, attention_mask=mask, position_ids=positions,
                               **kept._forward_args(cache)).logits[:, -1].double())  # fmt: skip
        if starts:
            assert ids.shape[1] < kept._start(texts, None)[0].shape[1] / 3
    assert th.allclose(logits[0], logits[1], atol=1e-4, rtol=0)
    assert not pickle.loads(pickle.dumps(kept))._prefixes
    with pytest.raises(TextGenValueError, match="prefix_cache as an int >= 0, got True"):
        LMUser(prefix_cache=True)


@pytest.mark.parametrize("persona", ["You want a {mood} film.", "{0}", "{prompt.foo}"])
def test_a_persona_that_the_exchange_cannot_fill_is_a_clear_error(persona):
    user = LMUser("default", persona=persona)
    with pytest.raises(TextGenValueError, match="cannot be filled from the exchange .* may name"):
        user.reply([ex("Hi")])


def test_the_lm_user_stops_at_eos_when_unk_is_eos_too():
    """Bug: with unk == EOS (GPT-2's tokenizer), dropping the unk id that a missing <|im_end|>
    maps to dropped EOS as well, and replies ran on past the end of text."""
    user = LMUser("default")
    user._load()
    user._tok.unk_token = user._tok.eos_token
    assert user._tok.eos_token_id in user.end_ids()


@pytest.mark.parametrize(
    "kwargs",
    [dict(temperature="hot"), dict(temperature=-1), dict(max_reply_tokens=0)],
)
def test_bad_sampling_settings_say_what_was_expected(kwargs):
    with pytest.raises(TextGenValueError, match="temperature as a number >= 0"):
        LMUser("default", **kwargs)
    with pytest.raises(TextGenValueError, match="temperature as a number >= 0"):
        HTTPUser("http://localhost:1/v1", **kwargs)


def test_stop_phrases_and_the_task_s_check_end_the_episode():
    user = LMUser("default", stop=("[DONE]",))
    assert user.ending.finish(ex("x"), "Great, thanks! [DONE] more") == Reply(
        "Great, thanks!", True
    )
    paid = LMUser(
        "default", check=lambda e, text: Reply(done=True, reward=0.5) if "ok" in text else None
    )
    assert paid.ending.finish(ex("x"), "ok then") == Reply("ok then", True, 0.5)
    assert paid.ending.finish(ex("x"), "no") == Reply("no", False, 0.0)
    lenient = LMUser("default", check=lambda e, text: Reply(done=False, reward=0.5))
    assert lenient.ending.finish(ex("x"), "ok [DONE]") == Reply("ok", False, 0.5)  # overruled
    bad = LMUser("default", check=lambda e, text: "yes")
    with pytest.raises(PartyError, match="return None or a Reply, got str"):
        bad.ending.finish(ex("x"), "anything")


# -- the HTTP user -------------------------------------------------------------------------------
@pytest.mark.parametrize("api", [("--key", "sk-user-456")], indirect=True)
def test_the_http_user_answers_through_a_real_server_with_the_key_from_the_environment(
    api, monkeypatch
):
    url, log = api
    monkeypatch.setenv("USER_KEY", "sk-user-456")
    user = HTTPUser(url, api_model="m", persona="You want a {genre} film.", api_key_env="USER_KEY")
    replies = user.reply([ex("What genre?"), ex("Okay, bye then")])
    assert replies == [Reply("You said: What genre?"), Reply("Thanks, bye!", done=True)]
    assert "sk-user-456" not in repr(user) + str(pickle.dumps(user))
    assert '"Authorization": "Bearer sk-user-456"' in log.read_text()


@pytest.mark.parametrize("api", [("--delay", "2")], indirect=True)
def test_a_slow_endpoint_times_out_with_an_error_naming_it(api):
    url, _ = api
    user = HTTPUser(url, timeout=0.3, retries=2, backoff=0.01)
    with pytest.raises(PartyError, match=r"simulated user: cannot reach http://127.0.0.1:\d+/v1"):
        user.reply([ex("Hello?")])


@pytest.mark.parametrize("api", [("--fail-first", "1", "--retry-after", "0.2")], indirect=True)
def test_a_busy_endpoint_is_retried_after_the_time_it_asks_for(api):
    url, log = api
    user = HTTPUser(url, retries=2, backoff=30.0)  # Retry-After (0.2 s), not the 30 s backoff
    assert user.reply([ex("Hi")]) == [Reply("You said: Hi")]
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.parametrize("api", [("--fail-first", "1")], indirect=True)
def test_a_failing_endpoint_leaves_the_step_unapplied_and_the_episode_goes_on(api):
    url, _ = api
    task = film_request_task(user=HTTPUser(url, retries=1))
    env = TextGenEnv(task=task)
    obs, _ = env.reset(seed=0)
    write(env, "What genre do you")
    text = env.text
    end = env.core.tokenizer.encode("\n", add_special_tokens=False)[0]
    with pytest.raises(PartyError, match="cannot reach http://127.0.0.1:\\d+/v1/chat/completions"):
        env.step(end)
    assert env.text == text  # not applied
    obs, reward, terminated, _, info = env.step(end)  # the server is back: the same step works
    assert info["turns"] == 1 and info["reply"].startswith("You said: What genre do you")
    assert not terminated and reward == 0.0


def test_the_http_user_refuses_a_url_that_is_not_http_and_bad_settings():
    with pytest.raises(TextGenValueError, match="start with http:// or https://"):
        HTTPUser("localhost:8000/v1")
    with pytest.raises(TextGenValueError, match="backoff >= 0"):
        HTTPUser("http://localhost:1/v1", backoff=-1)


@pytest.mark.parametrize("api", [("--fail-first", "1", "--retry-after", "3600")], indirect=True)
def test_a_server_s_retry_after_is_capped(api, monkeypatch):
    """Bug: a Retry-After of a day blocked the env step for a day."""
    import gym_textgen.chatapi

    monkeypatch.setattr(gym_textgen.chatapi, "MAX_RETRY_AFTER", 0.2)
    url, _ = api
    assert HTTPUser(url, retries=2).reply([ex("Hi")]) == [Reply("You said: Hi")]


# -- the film_request task -----------------------------------------------------------------------
def scripted(reply: str = "I like {genre} films."):
    return CallableParty(lambda e: reply.format(**e.reference))


@pytest.mark.parametrize(
    "recommendation, paid", [(" comedy.", 1.0), (" comedy or a horror film.", 0.0)]
)
def test_film_request_pays_for_naming_the_user_s_genre_and_no_other(recommendation, paid):
    env = TextGenEnv(task=film_request_task(user=scripted()))
    env.reset(seed=0, options={"prompt": "Recommend me a movie, please.",
                               "reference": {"genre": "comedy"}})  # fmt: skip
    steps = write(env, "What do you like?\n")
    assert steps[-1][4]["reply"] == "I like comedy films." and not steps[-1][2]
    obs = steps[-1][0]
    state = env.core.decode(obs["input_ids"][: int(obs["attention_mask"].sum())].tolist())
    assert state.endswith("What do you like?\nUser: I like comedy films.\nAssistant: I recommend a")
    steps = write(env, f"{recommendation}\n")
    assert steps[-1][2] and steps[-1][1] == paid


def test_a_genre_is_named_from_a_word_s_start():
    from gym_textgen.tasks.interactive import genres_named

    assert genres_named("A romantic Comedy, then crimes.") == {"romance", "comedy", "crime"}
    assert genres_named("a chain reaction in an attraction park") == set()


def test_film_request_keeps_its_eval_personas_out_of_training_and_passes_the_checker():
    task = gym_textgen.make_task("film_request")
    assert isinstance(task.interaction.party.user, LMUser)  # SmolLM2, loaded at its first reply
    train = set(zip(task.prompts, (r["genre"] for r in task.references), strict=True))
    held = set(zip(task.eval_prompts, (r["genre"] for r in task.eval_references), strict=True))
    assert len(held) == 12 and not train & held
    gym_check_env(TextGenEnv(task=film_request_task(user=scripted())), skip_render_check=False)


def test_film_request_with_an_lm_user_runs_in_a_vector_env_like_single_envs():
    task = film_request_task(user=LMUser("default", persona=FILM_PERSONA, max_reply_tokens=6))
    vec = TextGenVectorEnv(num_envs=2, task=task)
    singles = [TextGenEnv(task=task) for _ in range(2)]
    obs, _ = vec.reset(seed=3)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs["input_ids"][i], env.reset(seed=3 + i)[0]["input_ids"])
    rng = np.random.default_rng(0)
    newline = singles[0].core.tokenizer.encode("\n", add_special_tokens=False)[0]
    done = np.zeros(2, dtype=bool)
    for step in range(40):
        a = newline if step % 5 == 4 else int(rng.integers(3, 500))
        obs, rewards, terms, _, _ = vec.step(np.array([a, a]))
        for i, env in enumerate(singles):
            o, r, t = (env.reset()[0], 0.0, False) if done[i] else env.step(a)[:3]
            np.testing.assert_array_equal(obs["input_ids"][i], o["input_ids"])
            assert (rewards[i], terms[i]) == (r, t)
        done = terms.copy()


def test_a_user_s_input_longer_than_its_context_keeps_its_end():
    """LMUser did not fit its own input: a conversation past the model's positions reached the
    model whole (the default model: 256)."""
    from gym_textgen.interactive import LMUser
    from gym_textgen.interactive.party import Exchange

    user = LMUser("default", temperature=0, max_reply_tokens=8, chat=False)
    long = Exchange("Hi.", None, ("word " * 400,), 0, ((),))
    (reply,) = user.reply([long])
    assert isinstance(reply.text, str)
    ids, mask, positions, _ = user._start([user.text_of(long)], None, [user.ids_of(long)])
    assert ids.shape[1] == 256 - 8 and int(positions.max()) < 256


def test_a_user_whose_reply_fills_its_context_is_refused():
    """max_reply_tokens >= the model's positions left no room for the input: it was fed whole
    (room 0) or with its first tokens dropped (room < 0)."""
    from gym_textgen.interactive import LMUser

    user = LMUser("random-tiny", temperature=0, max_reply_tokens=512)
    with pytest.raises(TextGenValueError, match=r"512 positions .*max_reply_tokens=512"):
        user._load()
