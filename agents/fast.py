"""The fast paths of `TransformerExtractor`; the naive path (a full forward per row) is the reference.

Rollouts (no grad): `RolloutKVCache` keeps the keys/values of every env slot between SB3's
per-step calls and feeds only the token each slot added.

Updates (grad): `grouped_last_hidden` finds rows that extend the previous row by one token (the
consecutive steps of one episode, as `agents.buffers.EpisodeDictRolloutBuffer` orders them) and
computes each such chain with one forward over its longest row.

Both rely on right padding: a token's position never changes as the text grows, and causal
attention makes the hidden state at position p depend on tokens 0..p only.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch as th
from torch import nn


def full_last_hidden(trunk: nn.Module, ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
    """Reference path: the trunk over every row (up to the longest), hidden state at each row's end.

    Args:
        trunk: the LM without its head.
        ids: `(B, L)` token ids, text from position 0, padding after.
        lengths: `(B,)` tokens of text per row.

    Returns:
        `(B, H)`.
    """
    t = int(lengths.max())
    hidden = trunk(input_ids=ids[:, :t], use_cache=False).last_hidden_state  # (B, t, H)
    return hidden[th.arange(ids.shape[0], device=ids.device), lengths - 1]


def prefix_chains(ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
    """`(B,)` chain index per row: row j+1 joins row j's chain when it is row j plus one token."""
    b, width = ids.shape
    if b == 1:
        return th.zeros(1, dtype=th.long, device=ids.device)
    prev_len = lengths[:-1]
    beyond = th.arange(width, device=ids.device)[None, :] >= prev_len[:, None]  # (B-1, L)
    same_prefix = ((ids[1:] == ids[:-1]) | beyond).all(dim=1)
    extends = same_prefix & (lengths[1:] == prev_len + 1)  # (B-1,)
    starts = th.ones(b, dtype=th.bool, device=ids.device)
    starts[1:] = ~extends
    return th.cumsum(starts.long(), dim=0) - 1


def grouped_last_hidden(trunk: nn.Module, ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
    """`full_last_hidden`, computing each chain of one-token extensions with one forward.

    Any batch is correct: rows that chain with nothing form chains of one (the naive cost).
    """
    chain = prefix_chains(ids, lengths)  # (B,)
    n_chains = int(chain[-1]) + 1
    if n_chains == ids.shape[0]:
        return full_last_hidden(trunk, ids, lengths)
    is_last = th.ones_like(chain, dtype=th.bool)
    is_last[:-1] = chain[1:] != chain[:-1]
    heads = is_last.nonzero().squeeze(1)  # (G,) the longest row of each chain
    t = int(lengths[heads].max())
    hidden = trunk(input_ids=ids[heads, :t], use_cache=False).last_hidden_state  # (G, t, H)
    return hidden[chain, lengths - 1]  # (B, H)


class RolloutKVCache:
    """Per-slot key/value cache across SB3's step-by-step calls during rollouts.

    The cache has one row per env slot and C columns. A column of a row holds either one of that
    row's tokens (RoPE already applied at its true position) or a hole, which a boolean `valid`
    mask hides from attention. Each call:

    * rows equal to the cached ones reuse their stored hidden state;
    * rows that add one token feed only that token (position = its true position), and every
      row gets a new column (a hole for rows that did not add a token);
    * other rows (a new episode, user `predict()` input) are recomputed and spliced in.

    The whole cache is dropped when the batch size, device or weights change (weights are
    fingerprinted by the parameters' in-place version counters, so an optimizer step or
    `load_state_dict` invalidates it). When every row starts over the cache is rebuilt, and
    columns are compacted once holes outnumber half the longest row (or 8).
    """

    def __init__(self, trunk: nn.Module, params: list[nn.Parameter]) -> None:
        self.trunk = trunk
        self.params = params
        # transformers >= 5.2x names the argument `cache`; earlier releases `past_key_values`
        accepted = inspect.signature(trunk.forward).parameters
        self._cache_arg = "cache" if "cache" in accepted else "past_key_values"
        self.clear()

    def _run(self, cache: Any, **kwargs: Any) -> th.Tensor:
        """The trunk's last hidden states; `cache` (a DynamicCache) is extended in place."""
        return self.trunk(use_cache=True, **{self._cache_arg: cache}, **kwargs).last_hidden_state

    def clear(self) -> None:
        self.kv: Any = None
        self.valid: th.Tensor | None = None  # (B, C) which cache columns hold real tokens
        self.ids: th.Tensor | None = None  # (B, L) the rows the cache holds
        self.lengths: th.Tensor | None = None  # (B,)
        self.hidden: th.Tensor | None = None  # (B, H) hidden state at each row's last token
        self.fingerprint: tuple[Any, ...] | None = None

    def _fingerprint(self, ids: th.Tensor) -> tuple[Any, ...]:
        return (
            ids.shape[0],
            ids.device,
            sum(p._version for p in self.params),
            self.params[0].data_ptr(),
        )

    @th.no_grad()
    def __call__(self, ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
        fingerprint = self._fingerprint(ids)
        if self.kv is None or fingerprint != self.fingerprint or ids.shape[1] != self.ids.shape[1]:
            self._prefill_all(ids, lengths)
            self.fingerprint = fingerprint
            return self.hidden
        width = ids.shape[1]
        beyond = th.arange(width, device=ids.device)[None, :] >= self.lengths[:, None]
        prefix_ok = ((ids == self.ids) | beyond).all(dim=1)  # (B,)
        same = prefix_ok & (lengths == self.lengths)
        extend = prefix_ok & (lengths == self.lengths + 1)
        redo = ~(same | extend)
        if bool(redo.all()):  # every slot starts over (e.g. all episodes ended together)
            self._prefill_all(ids, lengths)
            return self.hidden
        hidden = self.hidden.clone()
        if bool(redo.any()):
            rows = redo.nonzero().squeeze(1)
            hidden[rows] = self._splice(rows, ids[rows], lengths[rows])
        if bool(extend.any()):
            hidden[extend] = self._extend(ids, lengths, extend)
        self.ids, self.lengths, self.hidden = ids.clone(), lengths.clone(), hidden
        longest = int(self.lengths.max())
        if self.valid.shape[1] - longest > max(8, longest // 2):  # holes cost attention time
            self._compact()
        return hidden

    def _prefill_all(self, ids: th.Tensor, lengths: th.Tensor) -> None:
        from transformers import DynamicCache

        t = int(lengths.max())
        self.kv = DynamicCache()
        hidden = self._run(self.kv, input_ids=ids[:, :t])  # (B, t, H)
        self.valid = th.arange(t, device=ids.device)[None, :] < lengths[:, None]  # (B, t)
        self.hidden = hidden[th.arange(ids.shape[0], device=ids.device), lengths - 1]
        self.ids, self.lengths = ids.clone(), lengths.clone()

    def _splice(self, rows: th.Tensor, ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
        """Recompute `rows` from scratch and write them into the cache; returns their hidden states."""
        from transformers import DynamicCache

        t = int(lengths.max())
        fresh = DynamicCache()
        hidden = self._run(fresh, input_ids=ids[:, :t])  # (R, t, H)
        columns = self.valid.shape[1]
        if t > columns:  # widen every row with holes
            self._pad_columns(t - columns)
            columns = t
        for layer, new in zip(self.kv.layers, fresh.layers, strict=True):
            layer.keys[rows, :, :t] = new.keys  # (R, heads, t, D)
            layer.values[rows, :, :t] = new.values
        self.valid[rows] = th.arange(columns, device=ids.device)[None, :] < lengths[:, None]
        return hidden[th.arange(len(rows), device=ids.device), lengths - 1]

    def _extend(self, ids: th.Tensor, lengths: th.Tensor, extend: th.Tensor) -> th.Tensor:
        """Feed each extending row its new token (others a dummy that stays hidden)."""
        rows = th.arange(ids.shape[0], device=ids.device)
        pos = th.where(extend, lengths - 1, th.zeros_like(lengths))  # (B,)
        new_tokens = ids[rows, pos][:, None]  # (B, 1)
        mask = th.cat([self.valid, extend[:, None]], dim=1).long()  # (B, C + 1)
        hidden = self._run(
            self.kv, input_ids=new_tokens, position_ids=pos[:, None], attention_mask=mask
        )  # (B, 1, H)
        self.valid = mask.bool()
        return hidden[extend, 0]

    def _pad_columns(self, n: int) -> None:
        for layer in self.kv.layers:
            pad = layer.keys.new_zeros(*layer.keys.shape[:2], n, layer.keys.shape[3])
            layer.keys = th.cat([layer.keys, pad], dim=2)
            layer.values = th.cat([layer.values, pad.clone()], dim=2)
        self.valid = th.cat([self.valid, self.valid.new_zeros(self.valid.shape[0], n)], dim=1)

    def _compact(self) -> None:
        """Move each row's real columns to the front (attention ignores column order)."""
        counts = self.valid.sum(dim=1)
        width = int(counts.max())
        order = th.argsort((~self.valid).int(), dim=1, stable=True)[:, :width]  # (B, width)
        for layer in self.kv.layers:
            index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys = th.gather(layer.keys, 2, index)
            layer.values = th.gather(layer.values, 2, index)
        self.valid = th.arange(width, device=self.valid.device)[None, :] < counts[:, None]
