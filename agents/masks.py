"""Top-k action masks from a frozen language model, for sb3-contrib's MaskablePPO.

At every step only the k next tokens that a frozen LM ranks highest are allowed; the policy
chooses among them. `textgen train --mask-top-k K` masks with the policy's own initial model;
`TopKMask(env, k)` on its own defaults to the `"default"` model. This is the masking of RL4LMs'
NLPO (Ramamurthy et al. 2023, "Is Reinforcement Learning (Not) for Natural Language
Processing?"), there with top-p: it keeps the policy on text the language model finds plausible
and shrinks a 4,096-way choice to k, so exploration is spent on sensible continuations.

`TopKMask` is a stock SB3 `VecEnvWrapper`: MaskablePPO asks the env for `action_masks()` before
each step and stores the masks in its rollout buffer, so the update uses the same masks. The
masks are computed in one batched forward pass of the frozen LM over the current observations.

>>> import agents
>>> from agents.masks import TopKMask
>>> env = TopKMask(agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=4), k=5)
>>> _ = env.reset()
>>> env.action_masks().sum(axis=1).tolist()
[5, 5]
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from gym_textgen.errors import TextGenValueError

#: The attribute of an SB3 model that records its top-k mask (`{"k": ..., "model": ...}`), so a
#: saved model is evaluated under the mask it was trained with.
MASK_ATTR = "textgen_mask_top_k"


class TopKMask(VecEnvWrapper):
    """Allow only the k most likely next tokens under a frozen LM.

    Args:
        venv: a TextGen `VecEnv` (from `agents.make_vec_env`).
        k: tokens allowed at each step (>= 1; at most the env's own allowed ids).
        model: the masking LM: a name for `gym_textgen.models.load_model` ("default",
            "random-tiny", "smollm2-135m", a folder) or a causal LM module, which is copied (the
            caller's module is left as it was, trainable). It must share the env's tokenizer.
        device: where the masking LM runs ("auto": a GPU when there is one).
    """

    def __init__(self, venv: VecEnv, k: int, model: Any = "default", device: str = "auto") -> None:
        super().__init__(venv)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise TextGenValueError(f"Expects a top-k mask with k >= 1 (an int), got {k!r}")
        from agents.vec_env import unwrap_textgen

        self.static_mask = unwrap_textgen(venv).core.mask  # the ids the tokenizer can produce
        allowed = int(self.static_mask.sum())
        if k > allowed:
            raise TextGenValueError(
                f"Expects a top-k mask (mask_top_k) of at most the {allowed} ids the env allows, "
                f"got k={k}"
            )
        self.k = int(k)
        self.model_name = model if isinstance(model, str) else type(model).__name__
        if isinstance(model, str):
            from gym_textgen.models import load_model

            # random-tiny is built for the env's action space, as the policy's own is
            sized = {"vocab_size": int(venv.action_space.n)} if model == "random-tiny" else {}
            model = load_model(model, **sized)
        else:
            model = copy.deepcopy(model)  # frozen below: never the caller's (maybe trained) LM
        if device == "auto":
            device = "cuda" if th.cuda.is_available() else "cpu"
        self.lm = model.to(device).eval().requires_grad_(False)
        n_out = self.lm.get_output_embeddings().weight.shape[0]
        if n_out < len(self.static_mask):
            raise TextGenValueError(
                f"The masking LM scores {n_out} token ids but the env's action space has "
                f"{len(self.static_mask)}: expects an LM that shares the env's tokenizer"
            )
        self._obs: dict[str, np.ndarray] | None = None

    def reset(self) -> dict[str, np.ndarray]:
        self._obs = self.venv.reset()
        return self._obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self._obs = obs
        return obs, rewards, dones, infos

    @th.no_grad()
    def action_masks(self) -> np.ndarray:
        """Boolean `(n_envs, V)`: the top k of the LM's next-token distribution, among the ids
        the env allows."""
        if self._obs is None:
            raise TextGenValueError("Call reset() before asking for action masks")
        device = next(self.lm.parameters()).device
        ids = th.as_tensor(self._obs["input_ids"], device=device)
        attention = th.as_tensor(self._obs["attention_mask"], device=device).long()
        lengths = attention.sum(1)
        logits = self.lm(input_ids=ids, attention_mask=attention).logits  # (n, L, V')
        last = logits[th.arange(len(ids), device=device), lengths - 1, : len(self.static_mask)]
        last = last.float().masked_fill(
            ~th.as_tensor(self.static_mask, device=device), float("-inf")
        )
        top = last.topk(self.k, dim=1).indices
        masks = th.zeros_like(last, dtype=th.bool).scatter_(1, top, True)
        return masks.cpu().numpy()

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any):
        if method_name == "action_masks":  # sb3-contrib's get_action_masks asks each slot
            masks = self.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)


__all__ = ["MASK_ATTR", "TopKMask"]
