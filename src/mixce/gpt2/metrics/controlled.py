"""Controlled MAUVE and coherence (paper appendix F.4), for rules controlled_human / controlled.

For each L, n random L-token fragments (:mod:`.fragments`, point ``controlled_fragments``)
of the texts (model: prompt + continuation; human: the whole text): c-mauve_L is MAUVE
between the human and the model fragments, c-coherence_L the cosine between a fragment's
prompt and the rest. The human reference is scored by the same code (its c-mauve compares two
independent human draws, so it is not 1, as in the paper). An L whose fragments run out is
skipped, the reason recorded. ``coherence_split`` official encodes c-coherence_L's texts at
L word pieces, as the released code does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixce.gpt2.metrics.coherence import coherence
from mixce.gpt2.metrics.fragments import (
    clean_up_spaces,
    cut_human_text,
    fragment_capacity,
    sample_fragments,
    sample_word_fragments,
    split_prompt,
    split_word_prompt,
    word_capacity,
    words_for_tokens,
)
from mixce.gpt2.metrics.mauve_score import mauve_from_features
from mixce.gpt2.metrics.scoring import featurize

log = logging.getLogger(__name__)


@dataclass
class Draw:
    """One set of fragments: MAUVE features on demand, coherence prompts and the rests."""

    features: Callable[[], np.ndarray]
    prompts: list[str]
    rests: list[str]


@dataclass
class Controlled:
    """One controlled job; ``official``: point ``controlled_fragments``, ``truncate_at_l``:
    ``coherence_split``."""

    mauve_f: Any
    coh_f: Any
    tokenizer: Any
    lengths: Sequence[int]
    n: int
    prompt_tokens: int
    mauve_seed: int
    official: bool
    truncate_at_l: bool

    def units(self, token_lists: Sequence[Sequence[int]]) -> list[Any]:
        """Fragment units of the texts: words (official) or GPT-2 tokens (clean)."""
        if not self.official:
            return list(token_lists)
        decoded = self.tokenizer.batch_decode(
            token_lists, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return [clean_up_spaces(text).split() for text in decoded]

    def draw(self, units: Sequence[Any], length: int, seed: int) -> Draw | None:
        """n fragments of ``length`` (official: int(L / 1.35) words), or None if they run out."""
        if self.official:
            fragments = sample_word_fragments(units, words_for_tokens(length), self.n, seed)
            if fragments is None:
                return None
            pairs = [split_word_prompt(f, words_for_tokens(self.prompt_tokens)) for f in fragments]
            texts = [" ".join(f) for f in fragments]
            return Draw(
                lambda: self.mauve_f.featurize(texts),
                [prompt for prompt, _ in pairs],
                [rest for _, rest in pairs],
            )
        fragments = sample_fragments(units, length, self.n, seed)
        if fragments is None:
            return None
        records = [
            dict(zip(("prompt_ids", "cont_ids"), split_prompt(f, self.prompt_tokens), strict=True))
            for f in fragments
        ]
        return Draw(
            lambda: featurize(self.mauve_f, records, self.tokenizer, length),
            self.tokenizer.batch_decode([r["prompt_ids"] for r in records]),
            self.tokenizer.batch_decode([r["cont_ids"] for r in records]),
        )

    def score(
        self, units: Sequence[Any], seed: int, reference: Mapping[str, np.ndarray] | None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
        """``({L: scores}, {"len<L>": features})`` of one set of texts; the human set
        (``reference`` None) is compared with a second draw of itself (seed + 1)."""
        log.info(
            "controlled_fragments %s: %d texts, %d fragments per L, seed %d",
            "official" if self.official else "clean",
            len(units),
            self.n,
            seed,
        )
        results: dict[str, dict[str, Any]] = {}
        arrays: dict[str, np.ndarray] = {}
        for length in self.lengths:
            if self.official:
                n_words = words_for_tokens(length)
                capacity = word_capacity(units, n_words)
                unit = f"{n_words} words (L = {length} tokens)"
            else:
                capacity = fragment_capacity(units, length)
                unit = f"{length} tokens"
            fragments = self.draw(units, length, seed)
            if fragments is None or (reference is not None and f"len{length}" not in reference):
                why = f"skipped: {capacity} fragment positions of {unit}, need {self.n}"
                if fragments is not None:
                    why = "skipped: the human fragments of this length ran out"
                results[str(length)] = {"status": why, "capacity": capacity}
                log.warning("L=%d %s", length, why)
                continue
            feats = fragments.features()
            if reference is None:
                arrays[f"len{length}"] = feats
                human_feats = self.draw(units, length, seed + 1).features()
            else:
                human_feats = reference[f"len{length}"]
            c_mauve = mauve_from_features(human_feats, feats, seed=self.mauve_seed)["mauve"]
            max_len = self.coh_f.max_len  # released c-coh_L: SimCSE's max_length = L
            self.coh_f.max_len = length if self.truncate_at_l else max_len
            try:
                prompts = self.coh_f.featurize(fragments.prompts)
                rests = self.coh_f.featurize(fragments.rests)
            finally:
                self.coh_f.max_len = max_len
            results[str(length)] = {
                "status": "ok",
                "capacity": capacity,
                "n_fragments": self.n,
                "c_mauve": c_mauve,
                "c_coherence": float(np.mean(coherence(prompts, rests))),  # nan: written null
            }
            if self.official:
                results[str(length)]["n_words"] = n_words
            log.info("L=%d: %s", length, results[str(length)])
        return results, arrays

    def human_units(self, texts: Sequence[str], max_length: int) -> list[Any]:
        """Units of the human texts; official: each cut to its first max_length - 1 tokens."""
        token_lists = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        if self.official:
            token_lists = [cut_human_text(ids, max_length) for ids in token_lists]
        return self.units(token_lists)


def sample_seed(rows: Sequence[Mapping[str, Any]], seed: int) -> int:
    """The draw seed of a model's sample file: ``seed + 1000 + its sampling seed``."""
    return seed + 1000 + int(rows[0]["seed"]) if rows else seed
