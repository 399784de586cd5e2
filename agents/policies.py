"""Transformer policies for stock stable-baselines3 (PPO, A2C) and sb3-contrib (MaskablePPO).

The LM plugs into SB3's own actor-critic structure through its hooks, so SB3's `forward`,
`evaluate_actions`, `get_distribution` and `predict_values` run unchanged:

    obs --TransformerExtractor--> last hidden state h (B, H)     # the LM trunk, at the last token
    h --mlp_extractor (identity, net_arch=[])--> h
    h --action_net = the LM's own output head--> logits (B, V)   # the head runs at one position
    h --value_net = Linear(H, 1)--> value (B, 1)

With `separate_value_trunk=True` SB3 builds a second extractor (a second copy of the LM trunk)
for the value function. With `lora={"r": 8, ...}` only LoRA adapters (and the value head) train;
the frozen base is then also the KL reference (`policy.reference()`).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents import lora as adapters
from agents.distributions import FastCategoricalDistribution, FastMaskableCategoricalDistribution
from agents.fast import RolloutKVCache, full_last_hidden, grouped_last_hidden, prefix_heads
from agents.policy_config import PolicyConfig
from gym_textgen.errors import TextGenValueError
from gym_textgen.models import disable_dropout, load_model, quiet_progress


def check_text_observation_space(space: spaces.Space) -> None:
    """Raise a ValueError unless `space` is TextGen's Dict(input_ids, attention_mask)."""
    ok = (
        isinstance(space, spaces.Dict)
        and {"input_ids", "attention_mask"} <= set(space.spaces)
        and all(
            isinstance(space[k], spaces.Box) and len(space[k].shape) == 1
            for k in ("input_ids", "attention_mask")
        )
    )
    if not ok:
        raise TextGenValueError(
            "TransformerPolicy expects a text observation space "
            "Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int8)) "
            f"as TextGen-v0 gives, got {space}"
        )


class TransformerExtractor(BaseFeaturesExtractor):
    """Runs a causal LM's trunk and returns the hidden state at each row's last real token.

    Args:
        observation_space: TextGen's Dict observation space.
        model: a model name for `gym_textgen.models.load_model` (`"default"`, `"random-tiny"`,
            a folder, a `.gguf` file, `"smollm2-135m"`) or a `transformers` causal LM.
        vocab_size: the action space size; the LM's output size must equal it.
        lora: LoRA settings (`peft.LoraConfig` fields) or None for full fine-tuning.
        model_kwargs: extra arguments for `load_model` (e.g. `{"seed": 1}` for random-tiny).
        kv_cache: during rollouts (no grad), keep each env slot's keys/values between steps and
            feed only the new token (`agents.fast.RolloutKVCache`).
        group_sequences: with grad (updates), compute rows that extend one another with one
            forward per episode segment (`agents.fast.grouped_last_hidden`).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        model: str | nn.Module = PolicyConfig.model,
        vocab_size: int | None = None,
        lora: dict[str, Any] | None = PolicyConfig.lora,
        model_kwargs: dict[str, Any] | None = PolicyConfig.model_kwargs,
        kv_cache: bool = PolicyConfig.kv_cache,
        group_sequences: bool = PolicyConfig.group_sequences,
    ) -> None:  # (the defaults are PolicyConfig's: the settings are defined there)
        check_text_observation_space(observation_space)
        if vocab_size is None:
            vocab_size = int(observation_space["input_ids"].high.max()) + 1
        if isinstance(model, nn.Module):
            lm = disable_dropout(model).eval()  # the same treatment as a loaded model
        else:
            kwargs = dict(model_kwargs or {})
            if model == "random-tiny":
                kwargs.setdefault("vocab_size", vocab_size)
            lm = load_model(model, **kwargs)
        head = lm.get_output_embeddings()
        if head is None or not isinstance(head, nn.Linear):
            raise TextGenValueError(
                f"Expects a causal LM with a Linear output head, got {type(lm).__name__}"
            )
        if head.out_features != vocab_size:
            raise TextGenValueError(
                f"The env's action space has {vocab_size} actions but model {model if isinstance(model, str) else type(model).__name__!r} "
                f"outputs {head.out_features} logits; create the env with vocab_size={head.out_features} "
                "and the model's tokenizer, or pick a model that matches the env's tokenizer"
            )
        length = int(observation_space["input_ids"].shape[0])
        positions = getattr(getattr(lm, "config", None), "max_position_embeddings", None)
        if isinstance(positions, int) and length > positions:
            raise TextGenValueError(
                f"The env's state holds up to {length} tokens but the model "
                f"{model if isinstance(model, str) else type(model).__name__!r} reads at most "
                f"{positions} positions (max_position_embeddings): lower the env's "
                "max_prompt_tokens or max_new_tokens (or the other party's max_reply_tokens), "
                "or use a model with a longer context"
            )
        super().__init__(observation_space, features_dim=head.in_features)
        self.lm = lm
        self.lora = dict(lora) if lora else None
        # (a saved policy's model holds its adapters already)
        if self.lora and not adapters.adapter_layers(self.lm):
            adapters.inject(self.trunk, self.lm, self.lora)
        self.group_sequences = group_sequences
        self._order_checked = False
        self.rollout_cache = (
            RolloutKVCache(self.trunk, list(self.lm.parameters())) if kv_cache else None
        )

    def _check_order(self, head: th.Tensor) -> None:
        """Warn once when updates see an episode's steps scattered through a minibatch."""
        self._order_checked = True
        rows = head.numel()
        runs = 1 + int((head[1:] != head[:-1]).sum())  # rows of one episode that sit together
        if rows >= 16 and runs > 2 * int(th.unique(head).numel()):
            warnings.warn(
                "TransformerPolicy: the update's minibatches hold episode steps in scattered "
                "order (SB3's default rollout buffer). They are still grouped, but whole episode "
                "segments make updates about 2x faster: pass "
                "rollout_buffer_class=agents.EpisodeDictRolloutBuffer "
                "(MaskableEpisodeDictRolloutBuffer for MaskablePPO), or build the algorithm "
                "with agents.make_algo, which does.",
                stacklevel=2,
            )

    def train(self, mode: bool = True) -> TransformerExtractor:
        """Switch train/eval mode; a switch also drops the rollout cache.

        SB3 switches to training mode before every update and back before every rollout, so
        the cache never outlives an update, even one that its weight fingerprint cannot see
        (fused optimizers and writes through `p.data` leave version counters alone).
        """
        if mode != self.training:
            self.clear_cache()
        return super().train(mode)

    def clear_cache(self) -> None:
        """Forget the rollout KV cache (call it after changing weights in place outside SB3)."""
        if self.rollout_cache is not None:
            self.rollout_cache.clear()

    @property
    def trunk(self) -> nn.Module:
        """The LM without its output head (`LlamaModel` inside `LlamaForCausalLM`)."""
        return self.lm.base_model

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        # SB3's preprocessing turned the integer Boxes into floats: ids below 2**24 are exact.
        ids = observations["input_ids"].long()  # (B, L)
        lengths = observations["attention_mask"].long().sum(dim=1)  # (B,)
        if bool((lengths < 1).any()):
            raise TextGenValueError(
                "Every observation needs at least one token (attention_mask sums to 0)"
            )
        # Right padding: the text starts at position 0 and causal attention never lets a position
        # see the padding after it, so no attention mask is needed.
        if self.rollout_cache is not None and not th.is_grad_enabled():
            return self.rollout_cache(ids, lengths)  # (B, H)
        if self.group_sequences:
            head = prefix_heads(ids, lengths)
            if not self._order_checked:
                self._check_order(head)
            return grouped_last_hidden(self.trunk, ids, lengths, head=head)
        return full_last_hidden(self.trunk, ids, lengths)

    # -- LoRA (agents.lora) ---------------------------------------------------------------------
    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Inside this block the LM is its frozen base (LoRA only)."""
        with adapters.adapters_off(self.lm):
            self.clear_cache()  # cached keys/values belong to the adapted model
            try:
                yield
            finally:
                self.clear_cache()

    def merged_lm(self) -> nn.Module:
        """A plain `transformers` LM with any LoRA weights merged in (a copy when LoRA is on)."""
        return adapters.merged(self.lm) if self.lora else self.lm


def extractor_kwargs(settings: PolicyConfig, action_space: spaces.Discrete) -> dict[str, Any]:
    """`TransformerExtractor`'s arguments for a policy with `settings`."""
    return {
        "model": settings.model,
        "vocab_size": int(action_space.n),
        "lora": settings.lora,
        "model_kwargs": settings.model_kwargs,
        "kv_cache": settings.kv_cache,
        "group_sequences": settings.group_sequences,
    }


def scale_learning_rates(optimizer: th.optim.Optimizer) -> None:
    """Make param groups' `lr_scale` multiply their learning rate at every step.

    SB3 sets every group's `lr` from the algorithm's schedule before each update; a step
    pre-hook scales the groups that ask for it and a post-hook puts the schedule's value back,
    so the schedule, the optimizer state and SB3's logging are untouched.
    """

    def before(opt: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in opt.param_groups:
            if group.get("lr_scale", 1.0) != 1.0:
                group["lr"] = group["lr"] * group["lr_scale"]

    def after(opt: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in opt.param_groups:
            if group.get("lr_scale", 1.0) != 1.0:
                group["lr"] = group["lr"] / group["lr_scale"]

    optimizer.register_step_pre_hook(before)
    optimizer.register_step_post_hook(after)


def save_lm(extractor: TransformerExtractor, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write an extractor's LM (LoRA merged) as a Hugging Face folder, with `tokenizer` if given."""
    folder = Path(folder)
    with quiet_progress():
        extractor.merged_lm().save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


class _TransformerPolicyMixin:
    """What the SB3 and sb3-contrib transformer policies share."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        **kwargs: Any,
    ) -> None:
        # the policy's own settings (PolicyConfig's fields); the rest are SB3's
        self.settings, kwargs = PolicyConfig.split(kwargs)
        model, separate_value_trunk = self.settings.model, self.settings.separate_value_trunk
        if not isinstance(action_space, spaces.Discrete):
            raise TextGenValueError(
                f"TransformerPolicy expects a Discrete action space, got {action_space}"
            )
        # Stored before super().__init__, which calls _build. A model object goes inside a tuple:
        # torch refuses module attributes before Module.__init__, and registering it here as
        # well as in the extractor would save its weights twice. With a separate value trunk,
        # the value function gets a copy taken now, before the actor's extractor changes it.
        given = isinstance(model, nn.Module)
        self.model_name = None if given else model
        self._given_models = (
            (model, copy.deepcopy(model) if separate_value_trunk else None) if given else None
        )
        kwargs["features_extractor_class"] = TransformerExtractor
        kwargs["features_extractor_kwargs"] = extractor_kwargs(self.settings, action_space)
        kwargs["net_arch"] = []  # the LM head reads the trunk's hidden state directly
        kwargs["ortho_init"] = False  # orthogonal init would overwrite pretrained weights
        kwargs["share_features_extractor"] = not separate_value_trunk
        # fused Adam: one kernel for all parameters (measured over SmolLM2's 135M: 0.09 s a step
        # against 0.66 s for the default); the rollout cache is dropped after every update, so
        # its version counters not moving does no harm
        if kwargs.get("optimizer_class", th.optim.Adam) in (th.optim.Adam, th.optim.AdamW):
            kwargs.setdefault("optimizer_kwargs", {"eps": 1e-5, "fused": True})
        kwargs.setdefault("optimizer_kwargs", {"eps": 1e-5})
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_features_extractor(self) -> TransformerExtractor:
        """The actor's extractor first; for `separate_value_trunk`, then the value function's."""
        if self._given_models is not None and "features_extractor" in self._modules:
            kwargs = {**self.features_extractor_kwargs, "model": self._given_models[1]}
            return self.features_extractor_class(self.observation_space, **kwargs)
        return super().make_features_extractor()

    def _build(self, lr_schedule: Any) -> None:
        self._build_mlp_extractor()  # identity: net_arch=[]
        # the same categorical law, sampled by inverse CDF (torch.multinomial is slow over a
        # vocabulary: agents.distributions)
        n = int(self.action_space.n)
        masked = isinstance(self, MaskableActorCriticPolicy)
        self.action_dist = (
            FastMaskableCategoricalDistribution(n) if masked else FastCategoricalDistribution(n)
        )
        self.action_net = self.pi_features_extractor.lm.get_output_embeddings()
        self.value_net = nn.Linear(self.features_dim, 1)
        nn.init.zeros_(self.value_net.weight)
        nn.init.zeros_(self.value_net.bias)
        head = {id(p) for p in self.value_net.parameters()}
        groups = [
            {"params": [p for p in self.parameters() if p.requires_grad and id(p) not in head]},
            {
                "params": list(self.value_net.parameters()),
                "lr_scale": float(self.settings.value_lr_scale),
            },
        ]
        self.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **self.optimizer_kwargs)
        scale_learning_rates(self.optimizer)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in (  # derived from the arguments below in __init__
            "features_extractor_class",
            "features_extractor_kwargs",
            "net_arch",
            "ortho_init",
            "share_features_extractor",
        ):
            data.pop(key, None)
        data.update(self.settings.policy_kwargs())
        if self.model_name is None:  # a model object: saved as the actor it became
            data["model"] = self.lm
        return data

    @property
    def lora(self) -> dict[str, Any] | None:
        """The LoRA settings (None: every weight trains)."""
        return self.settings.lora

    def evaluate_actions_full(
        self, obs: dict[str, th.Tensor], actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """SB3's `evaluate_actions` (values, log-probabilities of `actions`, entropies), and the
        whole next-token log-distribution `(B, V)` of each row: one forward for all four."""
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        distribution = self._get_action_dist_from_latent(latent_pi)
        log_probs_all = distribution.distribution.logits  # Categorical keeps them normalised
        return (
            self.value_net(latent_vf),
            distribution.log_prob(actions),
            distribution.entropy(),
            log_probs_all,
        )

    @property
    def lm(self) -> nn.Module:
        """The policy's Hugging Face causal LM (the actor)."""
        return self.pi_features_extractor.lm

    def reference(self) -> contextlib.AbstractContextManager:
        """Inside this block the actor is its frozen base model (needs `lora=`)."""
        if not self.lora:
            raise TextGenValueError(
                "reference() needs a LoRA policy (policy_kwargs={'lora': {...}})"
            )
        return self.pi_features_extractor.adapters_disabled()

    def save_pretrained(self, folder: str | Path, tokenizer: Any = None) -> Path:
        """Write the actor LM (LoRA merged) as a Hugging Face folder, with `tokenizer` if given."""
        return save_lm(self.pi_features_extractor, folder, tokenizer)


class TransformerPolicy(_TransformerPolicyMixin, ActorCriticPolicy):
    """An actor-critic policy whose actor is a Hugging Face causal LM.

    >>> import gym_textgen, agents
    >>> from stable_baselines3 import PPO
    >>> env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    >>> model = PPO(agents.TransformerPolicy, env, n_steps=8, batch_size=16, n_epochs=1,
    ...             policy_kwargs={"model": "random-tiny"}, seed=0)
    >>> model.learn(16).num_timesteps
    16

    Args (in `policy_kwargs`): `agents.PolicyConfig`'s fields (`model`, `lora`,
        `separate_value_trunk`, `value_lr_scale`, `kv_cache`, `group_sequences`, `model_kwargs`;
        each documented there, with the reason for its default); `kv_cache=False` and
        `group_sequences=False` together are the naive reference path that the fast one must
        match. The rest are `ActorCriticPolicy`'s (optimizer, ...).
    """


class MaskableTransformerPolicy(_TransformerPolicyMixin, MaskableActorCriticPolicy):
    """`TransformerPolicy` for sb3-contrib's MaskablePPO (reads `env.action_masks()`)."""
