"""A native batched TextGen environment: N episodes, one tokenizer, one scorer call per step."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gym_textgen.envs.core import TextGenConfig, TextGenCore
from gym_textgen.envs.textgen import TextGenEnv
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.party import replies_of


class TextGenVectorEnv(VectorEnv):
    """`num_envs` TextGen episodes stepped together.

    Every slot is a `TextGenEnv` sharing one `TextGenCore`, so the trajectories equal those of
    `num_envs` single environments seeded `seed + i`. A step validates every action first, then
    scores all the episodes that end in it with one scorer call, and only then applies the step:
    a scorer error leaves every slot as it was.

    Group sampling (`group_size=k`): consecutive slots `0..k-1`, `k..2k-1`, ... form groups whose
    slots get the same prompts: the n-th episode of every slot of a group continues the group's
    n-th prompt, whenever each slot reaches it. An algorithm can then compare k completions of one
    prompt (the per-prompt baseline of RLOO and GRPO). A group's prompts are drawn uniformly with
    its own generator, seeded from the seed of the group's first slot, so they cover the task and
    repeat with the seed.

    Args:
        num_envs: number of slots.
        autoreset_mode: `"NextStep"` (Gymnasium's default: the step after an episode ends resets
            that slot, ignoring its action), `"SameStep"` (the slot resets in the step that
            ends it; `info["final_obs"]` and `info["final_info"]` hold what it ended with) or
            `"Disabled"` (nothing resets by itself: `reset(options={"reset_mask": done})`
            resets the chosen slots, and stepping a slot whose episode has ended is an error).
        config: a `TextGenConfig`, or
        **kwargs: its fields as keywords (`TextGenEnv`'s arguments).
        render_mode: `"ansi"` or `"human"` for every slot.
        group_size: slots per prompt group (a divisor of `num_envs`); 1: every slot draws its own.

    `idle_finished = True` makes a slot whose episode ended wait, whatever the autoreset mode,
    until the next `reset()`: it starts no new episode, asks no party and no scorer, and returns
    its last observation with reward 0 (for algorithms that use one episode per slot per round,
    REINFORCE's: the episodes it would throw away cost nothing).

    >>> import gymnasium as gym, gym_textgen
    >>> envs = gym.make_vec("TextGen-v0", num_envs=4, vectorization_mode="vector_entry_point")
    >>> obs, info = envs.reset(seed=0)
    >>> obs["input_ids"].shape, envs.action_masks().shape[0]
    ((4, 56), 4)
    """

    def __init__(
        self,
        num_envs: int = 1,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        config: TextGenConfig | None = None,
        render_mode: str | None = None,
        group_size: int = 1,
        **kwargs: Any,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise TextGenValueError(f"Expects num_envs to be an int >= 1, got {num_envs!r}")
        if not isinstance(group_size, (int, np.integer)) or group_size < 1 or num_envs % group_size:
            raise TextGenValueError(
                f"Expects group_size to be an int >= 1 that divides num_envs={num_envs}, "
                f"got {group_size!r}"
            )
        self.group_size = int(group_size)
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise TextGenValueError(
                f"Expects autoreset_mode in {[m.value for m in AutoresetMode]}, "
                f"got {autoreset_mode!r}"
            ) from None
        self.core = TextGenCore(TextGenConfig.resolve(config, "TextGenVectorEnv", **kwargs))
        self.envs = [TextGenEnv.from_core(self.core, render_mode) for _ in range(num_envs)]
        self.num_envs = int(num_envs)
        self.autoreset_mode = mode
        self.metadata = {**TextGenEnv.metadata, "autoreset_mode": mode}
        self.render_mode = self.envs[0].render_mode
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._idle = np.zeros(self.num_envs, dtype=bool)  # ended, waiting for reset()
        self._idle_finished = False
        self._start_groups([None] * self.num_envs)

    # -- group sampling ----------------------------------------------------------------------
    def _start_groups(self, seeds: list[int | None]) -> None:
        """A generator and an empty prompt queue per group; every slot at its first episode.

        A group whose seed is None keeps the generator it has (as a Gymnasium env keeps its
        `np_random` on `reset(seed=None)`), so a run seeded once stays reproducible however
        often it resets; only a new env without any seed draws fresh entropy."""
        k = self.group_size
        old = getattr(self, "_group_rngs", None)
        self._group_rngs = [
            old[g]
            if seeds[g * k] is None and old is not None
            else np.random.default_rng(seeds[g * k])
            for g in range(self.num_envs // k)
        ]
        self._group_draws: list[list[int]] = [[] for _ in self._group_rngs]
        self._group_base = [0] * len(self._group_rngs)  # episode number of each queue's head
        self._slot_episode = np.zeros(self.num_envs, dtype=np.int64)

    def _slot_options(self, i: int, options: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Slot i's reset options: with groups, the group's prompt for the slot's next episode
        (unless `options` names a prompt itself)."""
        if self.group_size == 1 or (options and ({"prompt", "prompt_index"} & set(options))):
            return options
        k, g = self.group_size, i // self.group_size
        n = int(self._slot_episode[i])
        self._slot_episode[i] += 1
        draws = self._group_draws[g]
        while len(draws) <= n - self._group_base[g]:
            draws.append(int(self._group_rngs[g].integers(len(self.core.prompts))))
        index = draws[n - self._group_base[g]]
        used = int(self._slot_episode[g * k : (g + 1) * k].min()) - self._group_base[g]
        if used > 0:  # every slot of the group is past these: forget them
            del draws[:used]
            self._group_base[g] += used
        return {**(options or {}), "prompt_index": index}

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | list[dict[str, Any] | None] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every slot: slot i gets `seed + i` (or `seed[i]`) and `options` (or `options[i]`).

        `options={"reset_mask": mask}` (a boolean array `(num_envs,)`, Gymnasium's convention)
        resets only the slots where `mask` is True; the others keep their episodes and their
        observations, and `info` holds the reset slots only. With groups, a partial reset
        continues each group's prompt sequence: a seed then reseeds the reset slots' own
        generators, which do not choose a group's prompts."""
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise TextGenValueError(f"Expects {self.num_envs} seeds, got {len(seeds)}")
        if isinstance(options, dict) and "reset_mask" in options:
            options = dict(options)
            return self._reset_slots(self._reset_mask(options.pop("reset_mask")), seeds, options)
        per_slot = options if isinstance(options, list) else [options] * self.num_envs
        if len(per_slot) != self.num_envs:
            raise TextGenValueError(f"Expects {self.num_envs} option dicts, got {len(per_slot)}")
        if self.group_size > 1:
            self._start_groups(seeds)
        obs, infos = [], []
        for i, (env, s) in enumerate(zip(self.envs, seeds, strict=True)):
            o, info = env.reset(seed=s, options=self._slot_options(i, per_slot[i]))
            obs.append(o)
            infos.append(info)
        self._needs_reset[:] = False
        self._idle[:] = False
        return self._stack(obs), self._batch_infos(infos)

    def _reset_mask(self, mask: Any) -> np.ndarray:
        """`options["reset_mask"]`, checked as Gymnasium's own vector envs check it."""
        expected = f"Expects options['reset_mask'] to be a bool array of shape ({self.num_envs},)"
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
            raise TextGenTypeError(f"{expected}, got {got}")
        if mask.shape != (self.num_envs,):
            raise TextGenValueError(f"{expected}, got shape {mask.shape}")
        if not mask.any():
            raise TextGenValueError(f"{expected} with at least one True, got {mask}")
        return mask

    def _reset_slots(
        self, mask: np.ndarray, seeds: list[int | None], options: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the slots where `mask` is True; the others keep their current observation."""
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            _, info = self.envs[i].reset(seed=seeds[i], options=self._slot_options(i, options))
            infos = self._add_info(infos, info, i)
        self._needs_reset[mask] = False
        self._idle[mask] = False
        return self._stack([env.observation() for env in self.envs]), infos

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminated, truncated, slot_infos, finals = self.step_slots(actions)
        infos: dict[str, Any] = {}
        for i, final in enumerate(finals):
            if final is not None:
                infos = self._add_info(infos, {"final_obs": final[0], "final_info": final[1]}, i)
        infos.update(self._batch_infos(slot_infos))
        return obs, rewards, terminated, truncated, infos

    def _batch_infos(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """What Gymnasium's `_add_info` makes of every slot's info, built at once (half the
        vector step's time went to `_add_info`, slot by slot and key by key). Every slot's info
        holds the same keys, of the types `TextGenEnv._info` gives: int, float, str, and dicts
        of floats."""
        out: dict[str, Any] = {}
        every = np.ones(self.num_envs, dtype=bool)
        for key, first in infos[0].items():
            values = [info[key] for info in infos]
            if isinstance(first, dict):
                out[key] = self._batch_infos(values)
            elif type(first) in (int, float, bool):
                out[key] = np.array(values, dtype=type(first))
            else:  # text: an object array, as `_add_info` makes
                out[key] = np.array(values, dtype=object)
            out[f"_{key}"] = every.copy()
        return out

    def step_slots(
        self, actions: Any
    ) -> tuple[
        dict[str, np.ndarray],
        np.ndarray,
        np.ndarray,
        np.ndarray,
        list[dict[str, Any]],
        list[tuple[dict[str, np.ndarray], dict[str, Any]] | None],
    ]:
        """`step` with one info dict per slot (for adapters such as SB3's VecEnv).

        Returns:
            batched obs, rewards, terminated, truncated, each slot's info, and for each slot that
            ended and was reset in this step (SameStep mode) its `(final_obs, final_info)`.
        """
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise TextGenValueError(
                f"Expects actions of shape ({self.num_envs},), got {actions.shape} ({actions.dtype})"
            )
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        # 1. check every slot's step (nothing changes yet)
        if self.autoreset_mode == AutoresetMode.DISABLED and self._needs_reset.any():
            raise ResetNeeded(
                f"Slots {np.flatnonzero(self._needs_reset).tolist()} have ended their episodes "
                "and autoreset_mode is Disabled: reset them first with "
                "reset(options={'reset_mask': mask})"
            )
        idle = self._idle.copy()
        pending = [
            None if self._needs_reset[i] or idle[i] else env.prepare_step(actions[i])
            for i, env in enumerate(self.envs)
        ]
        # 2. one call of the other party for every slot whose policy ended a turn (interactive)
        asking = [i for i, p in enumerate(pending) if p is not None and p.exchange is not None]
        if asking:
            replies = replies_of(self.core.interaction.party, [pending[i].exchange for i in asking],
                                 retries=self.core.config.party_retries)  # fmt: skip
            for i, reply in zip(asking, replies, strict=True):
                pending[i] = self.envs[i].answer(pending[i], reply)
        # 3. one scorer call for every slot that needs a score
        to_score = [i for i, p in enumerate(pending) if p is not None and p.score_ids is not None]
        scores: dict[int, tuple[float, dict[str, float], str]] = {}
        if to_score:
            total, comps, texts = self.core.score(
                [pending[i].prompt for i in to_score],
                [pending[i].score_ids for i in to_score],
                [pending[i].reference for i in to_score],
            )
            for j, i in enumerate(to_score):
                scores[i] = (float(total[j]), {k: float(v[j]) for k, v in comps.items()}, texts[j])
        # 4. apply
        obs, infos, finals = [], [], []
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        for i, (env, p) in enumerate(zip(self.envs, pending, strict=True)):
            final = None
            if idle[i]:  # an ended episode waiting for reset(): nothing happens
                o, info = env.observation(), env._info()
            elif p is None:  # NextStep autoreset: this step resets the slot
                o, info = env.reset(options=self._slot_options(i))
            else:
                o, rewards[i], terminated[i], truncated[i], info = env.commit_step(
                    p, *scores.get(i, (0.0, None, ""))
                )
                ended = bool(terminated[i] or truncated[i])
                if ended and self.idle_finished:
                    self._idle[i] = True
                    final = (o, info) if same_step else None
                elif same_step and ended:
                    final = (o, info)
                    o, info = env.reset(options=self._slot_options(i))
            obs.append(o)
            infos.append(info)
            finals.append(final)
        # the slots to reset on the next step (SameStep: none; slots left idle reset this step)
        self._needs_reset = (terminated | truncated) & ~self._idle & (not same_step)
        return self._stack(obs), rewards, terminated, truncated, infos, finals

    @property
    def idle_finished(self) -> bool:
        """Whether a slot whose episode ended waits for the next `reset()` (see the class)."""
        return self._idle_finished

    @idle_finished.setter
    def idle_finished(self, value: bool) -> None:
        self._idle_finished = bool(value)
        if not value:  # slots left waiting are ended slots again: they reset as the mode says
            self._needs_reset |= self._idle
            self._idle[:] = False

    _STATE = ("_needs_reset", "_idle", "_idle_finished", "_group_rngs", "_group_draws",
              "_group_base", "_slot_episode")  # fmt: skip

    def get_state(self) -> dict[str, Any]:
        """A copy of every slot's state (`TextGenEnv.get_state`) and of the groups' prompt
        generators and queues, for `set_state`: a run restored from it steps on exactly as it
        would have."""
        return {
            "slots": [env.get_state() for env in self.envs],
            **copy.deepcopy({k: getattr(self, k) for k in self._STATE}),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a `get_state` snapshot of a vector env of as many slots and groups."""
        slots = state.get("slots", ())
        if len(slots) != self.num_envs or len(state.get("_group_rngs", ())) != len(
            self._group_rngs
        ):
            raise TextGenValueError(
                f"Expects a snapshot of {self.num_envs} slots in groups of {self.group_size}, "
                f"got {len(slots)} slots and {len(state.get('_group_rngs', ()))} groups"
            )
        state = {"_idle": np.zeros(self.num_envs, dtype=bool),
                 "_idle_finished": state.get("idle_finished", False), **state}  # fmt: skip
        missing = sorted(set(self._STATE) - set(state))
        if missing:
            raise TextGenValueError(
                f"Expects a snapshot of a TextGenVectorEnv (get_state), got one without {missing}"
            )
        for env, slot in zip(self.envs, slots, strict=True):
            env.set_state(slot)
        for key in self._STATE:
            setattr(self, key, copy.deepcopy(state[key]))

    def action_masks(self) -> np.ndarray:
        """Boolean `(num_envs, V)`: each slot's allowed actions."""
        return np.stack([env.action_masks() for env in self.envs])

    def render(self) -> tuple[Any, ...] | None:
        """Each slot's render (`"ansi"`: a tuple of strings; `"human"` prints them; no render
        mode: None, with Gymnasium's warning)."""
        if self.render_mode is None:
            return self.envs[0].render()  # None, with the warning
        out = tuple(env.render() for env in self.envs)
        return out if self.render_mode == "ansi" else None

    def _stack(self, obs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {key: np.stack([o[key] for o in obs]) for key in obs[0]}
