"""REINFORCE with baselines, as an SB3 algorithm (same policies, callbacks, logger, save/load).

The policy gradient the field starts from (Williams 1992): sample whole episodes, then push up the
log-probability of each action in proportion to how much better than a baseline its episode went.

    advantage  A = G - b                      G: the return (to go) of the step's episode
    loss       = -mean_t ratio_t * A_t        ratio = pi(a|s) / pi_old(a|s) (= 1 on epoch 1)

Baselines (`baseline=`):

* `"none"`: b = 0; A_t is the reward to go (plain REINFORCE).
* `"value"`: b = V(s_t), the policy's value head, trained alongside (REINFORCE with a critic).
* `"rloo"`: the leave-one-out mean of the other completions of the same prompt: with k slots
  per prompt group (`agents.make_vec_env(..., group_size=k)`), step t of episode i gets
  A_it = G_it - mean_{j != i} G_jt, the reward to go from step t against the other episodes'
  reward to go from the same step (an episode that has ended holds its last value). With the
  default sparse reward and gamma 1, that is A_i = R_i - mean_{j != i} R_j on every step
  (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE-Style
  Optimization for Learning from Human Feedback in LLMs"). With dense rewards
  (`dense_reward=True`, or a KL penalty in the reward) a step is credited only with the
  rewards from it on: the same gradient in expectation (the score so far depends
  only on the step's state, so it is a valid baseline), with less noise.
  `scale_by_std=True` divides by the std of the group's reward to go at the same step (with
  sparse rewards and gamma 1, of the group's returns, as GRPO does: Shao et al. 2024).

Rollouts are rounds, as `generate()` runs them: every slot starts an episode, the round lasts
until every slot's episode has ended, and only each slot's first episode in the round is used.
Slots that finish early idle: on a TextGen env (`TextGenVectorEnv.idle_finished`) they start no
new episode and call no party and no scorer until the next round, and the policy keeps seeing
their last observation, which costs its KV cache nothing. `n_rounds` rounds
make one update. With `n_epochs > 1`, `clip_range` clips the ratio as PPO does.

A KL penalty to a reference model is the algorithm's own (`kl_coef`, `kl_coef_target`,
`kl_reference`, as TRL's trainers take `beta`): `kl_coef` times the exact KL of each step's
next-token distribution to the reference is added to the loss (GRPO puts a sampled estimate
there; the exact one over the vocabulary costs one reference forward per minibatch and adds no
noise). `agents.KLPenaltyCallback` still puts a sampled penalty in the reward instead, as for
PPO.

>>> import agents
>>> from agents.algos import REINFORCE
>>> env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=4, group_size=2, max_new_tokens=4)
>>> model = REINFORCE("TransformerPolicy", env, policy_kwargs={"model": "random-tiny"}, seed=0)
>>> model.learn(32).num_timesteps >= 32
True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from agents.advantages import exact_kl
from agents.buffers import EpisodeRoundBuffer
from agents.kl import KLController, KLReference
from agents.policies import TransformerPolicy
from agents.registry import BASELINES
from agents.vec_env import env_group_size, env_horizon
from gym_textgen.errors import TextGenValueError


def _textgen_vector_env(env: VecEnv) -> Any:
    """The `gym_textgen.TextGenVectorEnv` inside SB3's wrappers, or None for another env."""
    from agents.vec_env import unwrap_textgen

    try:
        return unwrap_textgen(env).venv
    except TextGenValueError:
        return None


def episode_horizon(env: VecEnv, max_episode_steps: int | None) -> int:
    """The rounds' length: `max_episode_steps`, else the env's `max_new_tokens`.

    Raises:
        TextGenValueError: when `max_episode_steps` is shorter than the env's episodes (they
            would be cut and paid 0), or when neither is known.
    """
    if max_episode_steps is None:
        return env_horizon(env)
    try:
        longest = env_horizon(env)
    except TextGenValueError:  # not a TextGen env: collect_rollouts checks every round instead
        return max_episode_steps
    if max_episode_steps < longest:
        raise TextGenValueError(
            f"max_episode_steps={max_episode_steps} is shorter than the env's episodes "
            f"(max_new_tokens={longest}): REINFORCE would cut them, and a cut episode misses "
            "the score of its end (all of its reward when sparse: it would be paid 0); expects "
            f"max_episode_steps >= {longest}, or None to use the env's"
        )
    return max_episode_steps


class REINFORCE(OnPolicyAlgorithm):
    """REINFORCE with a baseline (none, value head, or leave-one-out over prompt groups).

    Args:
        policy: `agents.TransformerPolicy` (or `"TransformerPolicy"`).
        env: a TextGen VecEnv (`agents.make_vec_env`, with `group_size >= 2` for `"rloo"`).
        learning_rate: Adam step size (or schedule).
        n_rounds: rounds of episodes per update (each slot gives one episode per round).
        batch_size: transitions per minibatch (None: the whole batch, one step per epoch).
        n_epochs: passes over each batch (with `clip_range`, PPO's clipped ratio keeps them
            near the sampling policy).
        gamma: discount of the reward to go (1: the episode's return).
        baseline: `"none"`, `"value"` or `"rloo"`.
        scale_by_std: divide RLOO advantages by the group's std (GRPO's scaling; per step).
        clip_range: clip the ratio to [1 - c, 1 + c] (None: no clipping).
        normalize_advantage: standardise advantages per minibatch.
        ent_coef: entropy bonus.
        vf_coef: value loss weight (`baseline="value"`).
        max_grad_norm: gradient clipping.
        kl_coef: the weight of the exact KL to the reference in the loss (0: no KL); its start
            value when adaptive.
        kl_coef_target: adapt kl_coef toward this KL per episode (nats; `agents.kl.KLController`,
            whose state is saved with the model); None keeps it fixed.
        kl_horizon: environment steps over which the adaptive kl_coef may change by up to 20%.
        kl_reference: the reference causal LM; None: a frozen copy of the policy's LM as built
            (its initial weights, also when loaded: `load` builds the policy from its model
            name before it sets the trained parameters); a LoRA policy's reference is its
            frozen base. A policy built from an LM object rather than a name pickles that object
            into the checkpoint, trained: after `load`, pass `kl_reference=` the initial model
            to keep the same reference. The reference is built with the policy (eagerly, at
            construction) so that the first update already has it.
        max_episode_steps: the episodes' maximum length (default: the env's max_new_tokens).
            Every episode must end within it: a cut episode would miss the score of its end
            (with sparse rewards, be paid 0). A value below the env's max_new_tokens is refused at setup, and a
            round that ends with an episode still open (an env whose horizon cannot be read)
            raises.
        Others: as stable-baselines3's algorithms.
    """

    policy_aliases: ClassVar[dict[str, type]] = {"TransformerPolicy": TransformerPolicy}

    def __init__(
        self,
        policy: str | type[TransformerPolicy],
        env: VecEnv,
        learning_rate: float | Any = 1e-5,
        n_rounds: int = 1,
        batch_size: int | None = None,
        n_epochs: int = 1,
        gamma: float = 1.0,
        baseline: str = "rloo",
        scale_by_std: bool = False,
        clip_range: float | None = None,
        normalize_advantage: bool = False,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 1.0,
        kl_coef: float = 0.0,
        kl_coef_target: float | None = None,
        kl_horizon: int = 10_000,
        kl_reference: Any = None,
        max_episode_steps: int | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if baseline not in BASELINES:
            raise TextGenValueError(f"Expects baseline in {list(BASELINES)}, got {baseline!r}")
        for name, value in (("n_rounds", n_rounds), ("n_epochs", n_epochs)):
            if not isinstance(value, int) or value < 1:
                raise TextGenValueError(f"Expects {name} to be an int >= 1, got {value!r}")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int) or max_episode_steps < 1
        ):
            raise TextGenValueError(
                f"Expects max_episode_steps to be an int >= 1 or None, got {max_episode_steps!r}"
            )
        if batch_size is not None and batch_size < 2 and normalize_advantage:
            raise TextGenValueError(f"normalize_advantage needs batch_size >= 2, got {batch_size}")
        self.n_rounds, self.batch_size, self.n_epochs = n_rounds, batch_size, n_epochs
        self.baseline, self.scale_by_std = baseline, scale_by_std
        self.clip_range, self.normalize_advantage = clip_range, normalize_advantage
        self.max_episode_steps = max_episode_steps
        KLController(kl_coef, kl_coef_target, kl_horizon)  # checks the settings now
        self.kl_coef, self.kl_coef_target, self.kl_horizon = kl_coef, kl_coef_target, kl_horizon
        self.kl_reference = kl_reference
        self.kl_controller: KLController | None = None  # built in _setup_model when kl_coef > 0
        self.kl: KLReference | None = None
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=1,  # set in _setup_model: n_rounds x the episodes' maximum length
            gamma=gamma,
            gae_lambda=1.0,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            rollout_buffer_class=EpisodeRoundBuffer,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Discrete,),
        )
        if _init_setup_model:
            self._setup_model()

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "REINFORCE",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> REINFORCE:
        return super().learn(
            total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        # models, rebuilt by _setup_model (the controller, a setting's state, is saved)
        return [*super()._excluded_save_params(), "kl_reference", "kl"]

    def _setup_model(self) -> None:
        # a loaded model keeps its saved horizon and group size unless an env says otherwise
        saved_horizon, saved_group = getattr(self, "horizon", None), getattr(self, "group_size", 1)
        if self.env is not None:
            self.horizon = episode_horizon(self.env, self.max_episode_steps)
            self.group_size = env_group_size(self.env) or 1
        else:
            self.horizon, self.group_size = saved_horizon, saved_group
        if self.baseline == "rloo" and self.group_size < 2:
            raise TextGenValueError(
                "baseline='rloo' compares completions of one prompt: make the env with "
                f"group_size >= 2 (agents.make_vec_env(..., group_size=4)), got {self.group_size}"
            )
        self.n_steps = self.n_rounds * self.horizon
        self.rollout_buffer_kwargs = {
            "horizon": self.horizon,
            "baseline": self.baseline,
            "group_size": self.group_size,
            "scale_by_std": self.scale_by_std,
        }
        super()._setup_model()
        if self.clip_range is not None:
            self.clip_range_schedule = FloatSchedule(self.clip_range)
        if self.kl_coef > 0:
            saved = self.kl_controller  # a loaded model's, whose state continues
            self.kl_controller = KLController(self.kl_coef, self.kl_coef_target, self.kl_horizon)
            if saved is not None:
                self.kl_controller.restore(saved.state())
            self.kl = KLReference(self.policy, getattr(self, "kl_reference", None))
        else:
            self.kl_controller, self.kl = None, None

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: EpisodeRoundBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """`n_rounds` rounds: every slot starts an episode; each round ends when all have."""
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        textgen = _textgen_vector_env(env)
        if textgen is not None:  # finished slots wait for the next round: no wasted calls
            textgen.idle_finished = True
        try:
            return self._collect_rounds(env, callback, rollout_buffer)
        finally:
            if textgen is not None:
                textgen.idle_finished = False

    def _collect_rounds(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: EpisodeRoundBuffer
    ) -> bool:
        """`collect_rollouts`' rounds (see it)."""
        for r in range(self.n_rounds):
            self._last_obs = env.reset()  # fresh prompts (shared within each group)
            self._last_episode_starts = np.ones(env.num_envs, dtype=bool)
            active = np.ones(env.num_envs, dtype=bool)  # slots still in their round's episode
            for _ in range(self.horizon):
                with th.no_grad():
                    actions, values, log_probs = self.policy(
                        obs_as_tensor(self._last_obs, self.device)
                    )
                actions = actions.cpu().numpy()
                new_obs, rewards, dones, all_infos = env.step(actions)
                self.num_timesteps += int(active.sum())  # steps of used episodes only
                # callbacks see the infos of the round's episodes only: a slot that finished
                # its episode keeps stepping until the round ends, and those are not data
                infos = [i if a else {} for i, a in zip(all_infos, active, strict=True)]
                callback.update_locals(locals())
                if not callback.on_step():
                    return False
                self._update_info_buffer(infos, dones)
                rollout_buffer.add_step(
                    valid=active.astype(np.float32),
                    obs=self._last_obs,
                    action=actions.reshape(-1, 1),
                    reward=np.where(active, rewards, 0.0),
                    episode_start=self._last_episode_starts,
                    value=values,
                    log_prob=log_probs,
                )
                self._last_episode_starts = dones
                active &= ~dones
                if not active.any():
                    break
                # A finished slot's next episode is not used: the policy keeps seeing the slot's
                # last observation, which its KV cache already holds, instead of a new prompt
                # it would have to prefill for nothing.
                self._last_obs = {
                    k: np.where(active[:, None], new_obs[k], self._last_obs[k]) for k in new_obs
                }
            if active.any():  # an env whose horizon `_setup_model` could not read
                raise TextGenValueError(
                    f"REINFORCE's round ended after its {self.horizon} steps (max_episode_steps, "
                    "else the env's max_new_tokens) with env slots "
                    f"{np.flatnonzero(active).tolist()} still in their episode: cut there, an "
                    "episode misses the score of its end (all of its reward when sparse); "
                    "expects every episode to end within max_episode_steps, so pass one at "
                    "least as long as the env's longest episode"
                )
            rollout_buffer.skip_to((r + 1) * self.horizon)
        rollout_buffer.compute_returns_and_advantage()
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip = (
            self.clip_range_schedule(self._current_progress_remaining) if self.clip_range else None
        )
        pg_losses, value_losses, entropy_losses, clip_fractions, approx_kls = [], [], [], [], []
        kl_sum, kl_rows = 0.0, 0  # the first epoch's exact KL: each used step once
        for epoch in range(self.n_epochs):
            for data in self.rollout_buffer.get(self.batch_size):
                actions = data.actions.long().flatten()
                values, log_prob, entropy, log_probs_all = self.policy.evaluate_actions_full(
                    data.observations, actions
                )
                advantages = data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - data.old_log_prob)  # 1 on the first epoch
                if clip is None:
                    policy_loss = -(ratio * advantages).mean()
                else:
                    clipped = th.clamp(ratio, 1 - clip, 1 + clip)
                    policy_loss = -th.min(ratio * advantages, clipped * advantages).mean()
                    clip_fractions.append(float(((ratio - 1).abs() > clip).float().mean()))
                loss = policy_loss - self.ent_coef * entropy.mean()
                if self.kl is not None:
                    obs = data.observations
                    ref = self.kl.log_softmax(
                        obs["input_ids"].long(), obs["attention_mask"].long().sum(1)
                    )
                    row_kls = exact_kl(log_probs_all, ref)
                    loss = loss + self.kl_controller.kl_coef * row_kls.mean()
                    if epoch == 0:
                        kl_sum, kl_rows = kl_sum + float(row_kls.detach().sum()), kl_rows + len(ref)
                if self.baseline == "value":
                    value_loss = F.mse_loss(data.returns, values.flatten())
                    loss = loss + self.vf_coef * value_loss
                    value_losses.append(float(value_loss.detach()))
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                with th.no_grad():
                    log_ratio = log_prob - data.old_log_prob
                    approx_kls.append(float(((th.exp(log_ratio) - 1) - log_ratio).mean()))
                pg_losses.append(float(policy_loss.detach()))
                entropy_losses.append(float(-entropy.detach().mean()))
        self._n_updates += self.n_epochs
        buf = self.rollout_buffer  # flattened env-major by `get`, every array alike
        valid = buf.valid.flatten() > 0
        self.logger.record("train/policy_gradient_loss", float(np.mean(pg_losses)))
        self.logger.record("train/entropy_loss", float(np.mean(entropy_losses)))
        self.logger.record("train/approx_kl", float(np.mean(approx_kls)))
        if clip_fractions:
            self.logger.record("train/clip_fraction", float(np.mean(clip_fractions)))
        if self.kl is not None and kl_rows:  # the first epoch's: the rollout's policy
            episodes = max(1, buf.n_episodes)
            self.kl_controller.measured(self.logger, kl_sum / episodes, kl_sum / kl_rows, kl_rows)
        if value_losses:
            self.logger.record("train/value_loss", float(np.mean(value_losses)))
            self.logger.record(
                "train/explained_variance",
                float(
                    explained_variance(buf.values.flatten()[valid], buf.returns.flatten()[valid])
                ),
            )
        self.logger.record("train/advantage_std", float(np.std(buf.advantages.flatten()[valid])))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")


__all__ = ["REINFORCE"]
