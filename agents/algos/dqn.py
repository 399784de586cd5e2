"""Q-learning over a language model: stock SB3 DQN whose Q-network is the transformer, with the
LM's next-token logits as the Q-values of the V actions.

The online Q-network starts as the pretrained LM, so the greedy policy of the first steps is
greedy decoding; the target network is a second copy, synced every `target_update_interval`
steps as in any DQN. TD learning with gamma 1 and a reward only at the end of the text pulls the
logits far from a language model's, so expect it to lose fluency before it gains reward: it is
here to measure that honestly (issue 13's benchmark), not as the recommended method.

Evaluation (`agents.evaluation.sample_episodes`) runs DQN's own policy, the greedy one
(argmax Q, no epsilon), whatever `deterministic` says. SB3 does not save the replay buffer with
a model, so a resumed run starts from an empty one.

>>> import agents
>>> env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
>>> model = agents.make_algo("dqn", env, {"model": "random-tiny"}, seed=0)
>>> type(model.policy).__name__, model.learn(16).num_timesteps
('TransformerDQNPolicy', 16)
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from agents.policies import TransformerExtractor, extractor_kwargs, save_lm
from agents.policy_config import PolicyConfig
from gym_textgen.errors import TextGenValueError


class TransformerQNetwork(QNetwork):
    """SB3's QNetwork with the LM head in place of the MLP: Q(s, .) = the LM's logits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["net_arch"] = []
        super().__init__(*args, **kwargs)
        self.q_net = nn.Sequential(self.features_extractor.lm.get_output_embeddings())

    def _predict(self, observation: Any, deterministic: bool = True) -> th.Tensor:
        """argmax Q, refused (`DivergedError`) where a row's Q-values are NaN or infinite."""
        from agents.distributions import greedy_categorical

        return greedy_categorical(self(observation))


class TransformerDQNPolicy(DQNPolicy):
    """DQN's policy over a Hugging Face causal LM (see the module docstring).

    Args (in `policy_kwargs`): `agents.PolicyConfig`'s fields, as for `TransformerPolicy`
    (`group_sequences` and `value_lr_scale` are accepted and ignored: replayed minibatches are
    scattered transitions, one forward each, and there is no value head). The target network
    never uses the rollout KV cache: it scores replayed transitions, not env slots.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        **kwargs: Any,
    ) -> None:
        self.settings, kwargs = PolicyConfig.split(kwargs)
        if not isinstance(action_space, spaces.Discrete):
            raise TextGenValueError(f"DQN expects a Discrete action space, got {action_space}")
        if self.settings.separate_value_trunk:
            raise TextGenValueError("DQN has no value function: separate_value_trunk must be False")
        self.model = self.settings.model
        kwargs["features_extractor_class"] = TransformerExtractor
        kwargs["features_extractor_kwargs"] = {
            **extractor_kwargs(self.settings, action_space),
            # replayed minibatches are scattered transitions: one forward per row
            "group_sequences": False,
        }
        kwargs["net_arch"] = []
        kwargs.setdefault("optimizer_kwargs", {"eps": 1e-5})
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_q_net(self) -> QNetwork:
        target = hasattr(self, "q_net")  # _build makes the online network first
        settings = dict(self.features_extractor_kwargs)
        if target:
            settings.update(kv_cache=False, group_sequences=False)
            if isinstance(self.model, nn.Module):  # its own copy, not the online weights
                import copy

                settings["model"] = copy.deepcopy(self.model)
        extractor = self.features_extractor_class(self.observation_space, **settings)
        net_args = {**self.net_args, "features_extractor": extractor,
                    "features_dim": extractor.features_dim}  # fmt: skip
        return TransformerQNetwork(**net_args).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("features_extractor_class", "features_extractor_kwargs", "net_arch"):
            data.pop(key, None)
        data.update(self.settings.policy_kwargs())
        if not isinstance(self.model, str):  # a model object: saved as the network it became
            data["model"] = self.q_net.features_extractor.lm
        return data

    def _predict(self, observation: Any, deterministic: bool = True) -> th.Tensor:
        return self.q_net._predict(observation, deterministic=deterministic)

    @property
    def lm(self) -> nn.Module:
        """The online Q-network's causal LM."""
        return self.q_net.features_extractor.lm

    def save_pretrained(self, folder: Any, tokenizer: Any = None) -> Any:
        """Write the online network's LM as a Hugging Face folder (LoRA merged)."""
        return save_lm(self.q_net.features_extractor, folder, tokenizer)
