"""The fast paths of `TransformerExtractor`; the naive path (a full forward per row) is the reference.

Rollouts (no grad): `RolloutKVCache` keeps the keys/values of every env slot between SB3's
per-step calls and feeds only the token each slot added.

Updates (grad): `grouped_last_hidden` finds the rows of a minibatch that are prefixes of another
row (the earlier steps of one episode, in any order) and computes each group with one forward
over its longest row.

Both rely on right padding: a token's position never changes as the text grows, and causal
attention makes the hidden state at position p depend on tokens 0..p only.
"""

from __future__ import annotations

import functools
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


#: the most tokens a row may add between two rollout calls and still extend the cache (more:
#: the row is recomputed); an interactive episode's inserted reply is a few dozen
MAX_EXTEND = 256

_P1, _P2, _M1, _M2 = 2_147_483_647, 2_147_483_629, 1_000_003, 998_244_353  # primes < 2**31


@functools.lru_cache(maxsize=64)
def _powers(prime: int, base: int, t: int) -> tuple[list[int], list[int]]:
    """base**p and base**-p modulo prime, for p < t."""
    inverse = pow(base, prime - 2, prime)
    up, down = [1], [1]
    for _ in range(t - 1):
        up.append(up[-1] * base % prime)
        down.append(down[-1] * inverse % prime)
    return up, down


def _prefix_hash(x: th.Tensor, prime: int, base: int) -> th.Tensor:
    """`(B, t)`: the polynomial hash of every prefix, sum_j x_j * base**(p - j) mod prime.

    Computed as base**p * cumsum(x_j * base**-j) so that no step loops over positions; every
    factor is < 2**31, so every product is < 2**62 and nothing overflows int64.
    """
    up, down = _powers(prime, base, x.shape[1])
    up_t = th.tensor(up, dtype=th.long, device=x.device)
    down_t = th.tensor(down, dtype=th.long, device=x.device)
    scaled = th.cumsum(x * down_t % prime, dim=1) % prime  # the sum has < 2**31 terms < 2**31
    return scaled * up_t % prime


def prefix_heads(ids: th.Tensor, lengths: th.Tensor) -> th.Tensor:
    """`(B,)`: for each row, a row of the batch that extends it (or itself) and that no row
    of the batch extends: computing that head's sequence gives this row's last hidden state.

    Rows are matched by a double polynomial hash of every prefix, then checked token by token
    (a row whose check fails is its own head), so the result is exact for any batch.
    """
    b = ids.shape[0]
    t = int(lengths.max())
    x = ids[:, :t] + 1  # (B, t), no zero token
    keys = _prefix_hash(x, _P1, _M1) * _P2 + _prefix_hash(x, _P2, _M2)  # (B, t) fits in int64
    valid = th.arange(t, device=ids.device)[None, :] < lengths[:, None]  # (B, t)
    rows = th.arange(b, device=ids.device)[:, None].expand(b, t)[valid]  # (E,)
    entry_keys = keys[valid]  # (E,) the key of each prefix of each row
    # sort prefixes by key, longest owning row first: the first entry of a key is its head
    order = th.argsort(lengths[rows] * -1, stable=True)
    order = order[th.argsort(entry_keys[order], stable=True)]
    sorted_keys, sorted_rows = entry_keys[order], rows[order]
    first = th.ones_like(sorted_keys, dtype=th.bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    unique_keys, unique_heads = sorted_keys[first], sorted_rows[first]
    own = keys[th.arange(b, device=ids.device), lengths - 1]  # (B,) each row's whole-row key
    head = unique_heads[th.searchsorted(unique_keys, own)]
    # exact check: the row's tokens are the head's first tokens
    same = ((ids[:, :t] == ids[head, :t]) | ~valid).all(dim=1)
    return th.where(same, head, th.arange(b, device=ids.device))


def grouped_last_hidden(
    trunk: nn.Module, ids: th.Tensor, lengths: th.Tensor, head: th.Tensor | None = None
) -> th.Tensor:
    """`full_last_hidden`, with one forward per head (`prefix_heads`) instead of one per row.

    Any batch in any order is correct; rows that are nobody's prefix are their own heads (the
    naive cost). A minibatch of SB3's default buffer (random steps of a few episodes) has about
    one head per episode it touches; `agents.buffers.EpisodeDictRolloutBuffer` (whole episode
    segments) fewer still.
    """
    if head is None:
        head = prefix_heads(ids, lengths)  # (B,)
    heads, slot = th.unique(head, return_inverse=True)  # (G,), (B,)
    if heads.numel() == ids.shape[0]:
        return full_last_hidden(trunk, ids, lengths)
    t = int(lengths[heads].max())
    hidden = trunk(input_ids=ids[heads, :t], use_cache=False).last_hidden_state  # (G, t, H)
    return hidden[slot, lengths - 1]  # (B, H)


class RolloutKVCache:
    """Per-slot key/value cache across SB3's step-by-step calls during rollouts.

    The cache has one row per env slot and C columns. A column of a row holds either one of that
    row's tokens (RoPE already applied at its true position) or a hole, which a boolean `valid`
    mask hides from attention. Each call:

    * rows equal to the cached ones reuse their stored hidden state;
    * rows that add tokens (the policy's one, or an interactive episode's inserted reply after
      it) feed only those (positions = their true positions), in one forward with k new
      columns for every row (holes where a row added fewer than k);
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
        # rows that add tokens: one (the policy's), or an inserted span after it (an interactive
        # episode's other party), fed in one forward
        grow = lengths - self.lengths
        extend = prefix_ok & (grow >= 1) & (grow <= MAX_EXTEND)
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
        """Feed each extending row its new tokens, k columns for all rows (k: the most any row
        adds; a row's unused columns and the other rows' get a dummy token that stays hidden)."""
        rows = th.arange(ids.shape[0], device=ids.device)
        grow = th.where(extend, lengths - self.lengths, th.zeros_like(lengths))  # (B,)
        offsets = th.arange(int(grow.max()), device=ids.device)[None, :]  # (1, k)
        new = offsets < grow[:, None]  # (B, k): which new columns hold a row's tokens
        pos = th.where(new, self.lengths[:, None] + offsets, th.zeros_like(offsets))  # (B, k)
        new_tokens = th.gather(ids, 1, pos)  # (B, k)
        mask = th.cat([self.valid, new], dim=1).long()  # (B, C + k)
        hidden = self._run(
            self.kv, input_ids=new_tokens, position_ids=pos, attention_mask=mask
        )  # (B, k, H)
        self.valid = mask.bool()
        return hidden[rows, (grow - 1).clamp(min=0)][extend]

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
