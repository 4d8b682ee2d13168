"""Batched decoding for GPT-2-style causal LMs with the KV cache.

A batch is left-padded (position ids counted from each prompt's first real token), the prompts
are fed once, then one token per cached step. A row ends at EOS (not part of the continuation)
or after its budget of new tokens; ended rows leave the batch and the cache at once.

The next-token logits are float32 (also under bf16 autocast). ``unbiased``: temperature 1, the
full softmax; ``top_p``: the most probable tokens until their total reaches p, the crossing
token kept (as transformers' ``TopPLogitsWarper``), renormalized; ``greedy``: the argmax.
Sampling is by inverse CDF (float64) with one uniform per step from a ``torch.Generator``
seeded from ``(seed, i)``, so prompt ``i``'s continuation does not depend on the batching
(other batch shapes can move logits by ~1e-7 of rounding). Each generation carries its NLL
under the untruncated temperature-1 distribution, EOS included when the row ended on it.

Protocol points (docs/PROTOCOL.md): ``generation_length`` (:func:`token_budgets`; only the
budgets depend on the groups, the sampler stays independent of the batching) and
``precision`` (:func:`forward_dtype`, :func:`float32_head`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import re
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mixce.gpt2.tokenizer import loader_texts
from mixce.io import atomic_output, read_texts

log = logging.getLogger(__name__)

KINDS = ("unbiased", "top_p", "greedy")
_TOP_P_NAME = re.compile(r"top_p(\d+(?:\.\d+)?(?:e-?\d+)?)")
_NAME_FORMS = (
    "'unbiased', 'greedy' or 'top_p<P>' with 0 < P <= 1 written with two decimals "
    "(e.g. 'top_p0.95')"
)


@dataclass(frozen=True)
class Decoding:
    """A decoding rule: ``kind`` is "unbiased", "top_p" or "greedy"; ``top_p`` only for top_p."""

    kind: str
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown decoding kind {self.kind!r}; expected one of {KINDS}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.kind != "top_p" and self.top_p != 1.0:
            raise ValueError(f"top_p={self.top_p!r} given for decoding kind {self.kind!r}")

    @property
    def name(self) -> str:
        """The name in file paths: "unbiased", "greedy", "top_p0.95" (more digits kept)."""
        p = self.top_p
        if self.kind != "top_p":
            return self.kind
        return f"top_p{p:.2f}" if round(p, 2) == p else f"top_p{p!r}"


def parse_decoding(name: str) -> Decoding:
    """The :class:`Decoding` named ``name`` (the inverse of :attr:`Decoding.name`)."""
    if name in ("unbiased", "greedy"):
        return Decoding(name)
    match = _TOP_P_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"bad decoding name {name!r}: expected {_NAME_FORMS}")
    p = float(match.group(1))
    if not 0.0 < p <= 1.0:
        raise ValueError(f"bad decoding name {name!r}: top_p must be in (0, 1]; {_NAME_FORMS}")
    decoding = Decoding("top_p", p)
    if decoding.name != name:
        raise ValueError(f"bad decoding name {name!r}: write it as {decoding.name!r}")
    return decoding


def total_lengths(
    human_token_lengths: Sequence[int], *, group: int, floor: int, cap: int
) -> list[int]:
    """Total length (prompt included) at which each text's sample stops: the released rule.
    Texts (GPT-2 tokens, EOS not counted) go ``group`` (released: 32) at a time in file order;
    each gets ``max(floor, min(cap, longest + 1))``: the released code appends EOS, cuts every
    text to ``cap`` (finetuning ``max_length``, 512), pads the group to its longest text and
    generates up to that width, or up to ``floor`` (prompt length + 1 = 51) when smaller."""
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    if not 1 <= floor <= cap:
        raise ValueError(f"need 1 <= floor <= cap, got floor={floor}, cap={cap}")
    lengths = [int(n) for n in human_token_lengths]
    totals: list[int] = []
    for start in range(0, len(lengths), group):
        members = lengths[start : start + group]
        totals += [max(floor, min(cap, max(members) + 1))] * len(members)
    return totals


def token_budgets(
    setting: str,
    prompt_lengths: Sequence[int],
    human_token_lengths: Sequence[int],
    *,
    max_new_tokens: int,
    group: int,
    cap: int,
    prompt_tokens: int,
) -> list[int]:
    """New tokens allowed after each prompt under protocol point ``generation_length``: clean,
    ``max_new_tokens`` each; official, :func:`total_lengths` (floor ``prompt_tokens + 1``) less
    the prompt's length (at least 1)."""
    if len(prompt_lengths) != len(human_token_lengths):
        raise ValueError(
            f"{len(prompt_lengths)} prompts and {len(human_token_lengths)} human lengths"
        )
    if setting == "clean":
        return [int(max_new_tokens)] * len(prompt_lengths)
    if setting != "official":
        raise ValueError(f"generation_length: unknown setting {setting!r}")
    totals = total_lengths(human_token_lengths, group=group, floor=prompt_tokens + 1, cap=cap)
    budgets = [total - int(n) for total, n in zip(totals, prompt_lengths, strict=True)]
    short = [i for i, b in enumerate(budgets) if b < 1]
    if short:
        raise ValueError(f"text {short[0]}: its prompt leaves no room under the length rule")
    return budgets


def forward_dtype(setting: str, device_type: str) -> torch.dtype | None:
    """Autocast dtype of the sampling forward (protocol point ``precision``): bf16 on CUDA under
    clean, else None (float32). :func:`generate` casts the logits to float32 either way."""
    if setting not in ("official", "clean"):
        raise ValueError(f"precision: unknown setting {setting!r}")
    return torch.bfloat16 if setting == "clean" and device_type == "cuda" else None


@dataclass
class Generation:
    """One prompt's continuation (``token_ids`` without EOS; ``nll`` over the ``n_scored``
    tokens, EOS included when ``finish_reason == "eos"``)."""

    index: int
    prompt_ids: list[int]
    token_ids: list[int]
    finish_reason: str  # "eos" | "length"
    nll: float
    n_scored: int


def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    decoding: Decoding,
    max_new_tokens: int | Sequence[int],
    eos_id: int,
    seed: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> list[Generation]:
    """One :class:`Generation` per prompt of causal LM ``model`` (on ``device``): one budget or
    one per prompt (:func:`token_budgets`); ``dtype``: autocast of the body (float32 head)."""
    if isinstance(max_new_tokens, int):
        budgets = [max_new_tokens] * len(prompts)
    else:
        budgets = [int(b) for b in max_new_tokens]
        if len(budgets) != len(prompts):
            raise ValueError(f"{len(budgets)} budgets for {len(prompts)} prompts")
    if min(budgets, default=1) < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {min(budgets)}")
    prompts = [list(map(int, p)) for p in prompts]
    empty = [i for i, p in enumerate(prompts) if not p]
    if empty:
        raise ValueError(f"{len(empty)} empty prompt(s), the first is prompt {empty[0]}")
    config = getattr(model, "config", None)
    n_positions = getattr(config, "n_positions", getattr(config, "max_position_embeddings", None))
    # The last token fed to the model is the one before the last generated token.
    longest = max((len(p) + b - 1 for p, b in zip(prompts, budgets, strict=True)), default=0)
    if n_positions is not None and longest > n_positions:
        raise ValueError(
            f"prompt + continuation needs {longest} positions, the model has {n_positions}"
        )

    device = torch.device(device)
    forward = _forward_fn(model, device, dtype)
    was_training = model.training
    model.eval()
    generations: list[Generation] = []
    starts = range(0, len(prompts), batch_size)
    try:
        with torch.inference_mode():
            for start in tqdm(starts, desc=f"generate {decoding.name}", disable=not progress):
                end = start + batch_size
                batch = (prompts[start:end], list(range(start, start + len(prompts[start:end]))))
                generations += _generate_batch(
                    forward, *batch, decoding, budgets[start:end], eos_id, seed, device
                )
    finally:
        model.train(was_training)
    return generations


def _generate_batch(
    forward: Callable[..., tuple[torch.Tensor, Any]],
    prompts: list[list[int]],
    indices: list[int],
    decoding: Decoding,
    budgets: list[int],
    eos_id: int,
    seed: int,
    device: torch.device,
) -> list[Generation]:
    """Decode one batch; row ``r``'s uniforms are a prefix of its own stream whatever the
    other rows' budgets."""
    n = len(prompts)
    lengths = [len(p) for p in prompts]
    width = max(lengths)
    input_ids = torch.zeros((n, width), dtype=torch.long)  # padding: any valid id
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for r, prompt in enumerate(prompts):
        input_ids[r, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[r, width - len(prompt) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    input_ids, position_ids = input_ids.to(device), position_ids.to(device)
    attention_mask = attention_mask.to(device)
    next_position = torch.tensor(lengths, device=device)
    uniforms = None
    if decoding.kind != "greedy":
        uniforms = _row_uniforms(seed, indices, max(budgets)).to(device)

    # `active` lists the batch rows (0..n-1) still decoding, in cache order.
    active = list(range(n))
    active_t = torch.arange(n, device=device)
    tokens: list[list[int]] = [[] for _ in range(n)]
    finish = ["length"] * n
    nll = torch.zeros(n, dtype=torch.float64, device=device)
    cache = None
    for step in range(max(budgets)):
        logits, cache = forward(input_ids, attention_mask, position_ids, cache)
        u = None if uniforms is None else uniforms[active_t, step]
        token, logp = _choose(logits[:, -1, :].float(), decoding, u)
        nll.index_add_(0, active_t, -logp.double())

        keep = []
        for i, (row, t) in enumerate(zip(active, token.tolist(), strict=True)):
            if t == eos_id:
                finish[row] = "eos"
            else:
                tokens[row].append(t)
                if len(tokens[row]) < budgets[row]:
                    keep.append(i)
        if not keep:
            break
        if len(keep) < len(active):  # drop the ended rows from the batch and the cache
            keep_t = torch.tensor(keep, device=device)
            active = [active[i] for i in keep]
            active_t, token = active_t[keep_t], token[keep_t]
            attention_mask, next_position = attention_mask[keep_t], next_position[keep_t]
            cache = _select_rows(cache, keep_t)
        input_ids = token[:, None]
        position_ids = next_position[:, None]
        next_position = next_position + 1
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], 1)

    rows = zip(indices, prompts, tokens, finish, nll.tolist(), strict=True)
    return [Generation(*row, n_scored=len(row[2]) + (row[3] == "eos")) for row in rows]


def _choose(
    logits: torch.Tensor, decoding: Decoding, u: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens ``[B]`` and their untruncated log-probabilities, from float32 ``logits``."""
    lse = torch.logsumexp(logits, dim=-1)
    if decoding.kind == "greedy":
        token = logits.argmax(dim=-1)
    else:
        assert u is not None
        probs = torch.exp(logits - lse[:, None])
        if decoding.kind == "top_p" and decoding.top_p < 1.0:
            _, order, cdf, n_keep = _nucleus(probs, decoding.top_p)
            last = (n_keep - 1)[:, None]
            rank = torch.searchsorted(cdf, u[:, None] * cdf.gather(1, last), right=True)
            token = order.gather(1, torch.minimum(rank, last)).squeeze(1)
        else:
            cdf = probs.double().cumsum(dim=-1)
            token = torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True).squeeze(1)
            token = token.clamp(max=logits.shape[-1] - 1)
    return token, logits.gather(1, token[:, None]).squeeze(1) - lse


def _nucleus(
    probs: torch.Tensor, top_p: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted probabilities, their order, float64 CDF and nucleus size: a token is kept when
    the total before it is below ``top_p`` (the crossing token and the first always are)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cdf = sorted_probs.double().cumsum(dim=-1)
    before = torch.nn.functional.pad(cdf[:, :-1], (1, 0))
    n_keep = (before < top_p).sum(dim=-1)
    return sorted_probs, order, cdf, n_keep


def _row_uniforms(seed: int, indices: list[int], steps: int) -> torch.Tensor:
    """``[len(indices), steps]`` float64 uniforms in [0, 1); row r from its own generator,
    seeded with 64 bits of ``SeedSequence([seed, index])``."""
    states = [np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] for i in indices]
    generators = [torch.Generator().manual_seed(int(state)) for state in states]
    return torch.stack([torch.rand(steps, generator=g, dtype=torch.float64) for g in generators])


@contextlib.contextmanager
def float32_head(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model``'s LM head in float32 outside autocast (wrapped on the instance): under bf16
    autocast it rounds the logits to bf16 (steps of 0.25 nats at |logit| 64-128), which no later
    cast undoes: sampling from them is not sampling from the model."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield
        return
    original = head.forward

    def forward32(hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return original(hidden.float())

    head.forward = forward32
    try:
        yield
    finally:
        del head.forward  # the class's forward again


def _forward_fn(
    model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None
) -> Callable[..., tuple[torch.Tensor, Any]]:
    """``forward(input_ids, attention_mask, position_ids, cache) -> (logits, cache)``; the
    cache argument is ``cache`` in transformers 5, ``past_key_values`` before;
    ``logits_to_keep=1`` skips the LM head on all prompt positions but the last."""
    params = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def forward(ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> Any:
        autocast = contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype)
        inputs = dict(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        with autocast, float32_head(model):
            out = model(**inputs, **{cache_arg: cache}, **extra)
        new_cache = out["cache"] if "cache" in out else out["past_key_values"]
        return out["logits"], new_cache

    return forward


def _select_rows(cache: Any, rows: torch.Tensor) -> Any:
    """Keep only ``rows`` (batch indices) of a KV cache: a transformers Cache or legacy tuples."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(rows)
        return cache
    return tuple(tuple(t.index_select(0, rows) for t in layer) for layer in cache)


def read_token_ids(
    path: str | os.PathLike[str], *, tokenizer: Any, n: int | None = None, newlines: str = "clean"
) -> list[list[int]]:
    """GPT-2 token ids (no special tokens) of the first ``n`` texts of a jsonl file, as
    :func:`mixce.gpt2.tokenizer.loader_texts` gives them under ``newlines``."""
    texts = loader_texts(read_texts(path), newlines)[:n]
    if n is not None and len(texts) < n:
        raise ValueError(f"{path}: {n} prompts asked for, the file has {len(texts)} texts")
    token_ids = []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if not ids:
            raise ValueError(f"{path}: text {i} has no tokens")
        token_ids.append(list(ids))
    return token_ids


def cut_prompts(
    token_ids: Sequence[Sequence[int]], prompt_tokens: int = 50, source: str = "texts"
) -> list[list[int]]:
    """The first ``prompt_tokens`` tokens of each text (all of a shorter one, logged)."""
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens must be >= 1, got {prompt_tokens}")
    prompts = [list(ids[:prompt_tokens]) for ids in token_ids]
    short = sum(len(p) < prompt_tokens for p in prompts)
    if short:
        log.warning(
            f"{source}: {short} of {len(prompts)} texts have fewer than {prompt_tokens} tokens; "
            "their prompts are the whole text"
        )
    return prompts


SAMPLE_KEYS = (
    *"index prompt continuation prompt_ids token_ids finish_reason seed decoding nll".split(),
    "n_scored",
)


def write_samples(
    path: str | os.PathLike[str],
    generations: Sequence[Generation],
    *,
    tokenizer: Any,
    seed: int,
    decoding: Decoding,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write one JSON line per generation (keys :data:`SAMPLE_KEYS`, then ``extra``) atomically."""
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(SAMPLE_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite sample fields")

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    with atomic_output(path) as handle:
        for g in generations:
            text = decode(g.prompt_ids), decode(g.token_ids)
            values = g.index, *text, g.prompt_ids, g.token_ids, g.finish_reason, seed, decoding.name
            record = dict(zip(SAMPLE_KEYS, (*values, g.nll, g.n_scored), strict=True))
            handle.write(json.dumps({**record, **extra}, ensure_ascii=False) + "\n")


def summarize(generations: Sequence[Generation], seconds: float) -> dict[str, Any]:
    """Counts and speed of a decoding run (continuation lengths in tokens, EOS excluded)."""
    lengths = [len(g.token_ids) for g in generations]
    n, tokens = len(generations), sum(lengths)
    return {
        "n": n,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else math.nan,
        "eos_share": sum(g.finish_reason == "eos" for g in generations) / n if n else math.nan,
        "mean_length": statistics.fmean(lengths) if n else math.nan,
        "median_length": statistics.median(lengths) if n else math.nan,
        "n_empty": sum(length == 0 for length in lengths),
    }
