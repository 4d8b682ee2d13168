r"""Blind A/B human evaluation of MLE against MixCE (paper section 4.2 and appendix H).

The paper shows annotators two paragraphs that share a beginning (the prompt) and differ in
the continuation -- one from the MLE model, one from the MixCE model, in random order -- and
asks which is better (or whether they are the same), with a justification.  A good paragraph
is fluent, coherent, informative and sensical (:data:`INSTRUCTIONS`).  Only paragraphs of 5 to
8 sentences are used (longer ones are cut to 8 sentences), paragraphs with fewer than 400 or
more than 2000 characters are removed, and pairs whose lengths differ by more than one
sentence or more than 200 characters are not used.  Three annotators judge each pair; Table 4
counts the answers and marks a significant preference (bootstrap test, Efron and
Tibshirani 1994).

Workflow: :func:`make_pairs` builds the blind sheet and the key (which side is MLE)
reproducibly from a seed; annotators answer ``1``, ``2`` or ``tie`` (one row per pair and
annotator); :func:`judgments_table` un-blinds the answers through the key into Table 4's
counts, shares and bootstrap p-values, and :func:`table4` renders the LaTeX.

Sentence splitting (:func:`split_sentences`) is deliberately simple: a sentence ends at a run
of ``.``, ``!`` or ``?`` (plus closing quotes or brackets) followed by whitespace and then an
upper-case letter, a digit or an opening quote or bracket; a single ``.`` after a common title
abbreviation (Mr, Mrs, Dr, St, ...) or after a single capital letter (an initial) is not an
end.  Text after the last sentence end (an unfinished sentence) counts as a sentence.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from mixce.tables import MISSING, dataset_label, header, latex_table

log = logging.getLogger(__name__)

#: The paper's question: which paragraph is better ("1", "2" or "tie" = non-distinguishable).
QUESTIONS: tuple[str, ...] = ("better",)
#: Free-text column for the annotator's justification (not analysed; asked to deter random
#: choices and to spot bad annotators, as in the paper).
JUSTIFICATION = "justification"
ALLOWED_ANSWERS: tuple[str, ...] = ("1", "2", "tie")

#: Instructions to annotators (paper appendix H).
INSTRUCTIONS = """\
You will read two text paragraphs that share the same beginning but continue differently.
Choose which paragraph is better ("1" or "2"), or "tie" if you cannot distinguish them, and
justify your choice in a sentence or two. A good paragraph is:
- Fluent: has no obviously ungrammatical sentences, missing components, etc. that make the
  text difficult to read.
- Coherent: stays on topic with the beginning and builds from sentence to sentence to a
  coherent body of information.
- Informative: has diverse and interesting content.
- Sensical: generally makes sense.
"""

#: Why a pair can be dropped by :func:`make_pairs`, in the order the checks run.
DROP_REASONS = (
    *("empty", "too_few_sentences", "too_short", "too_long"),
    *("sentence_diff", "char_diff", "identical", "not_sampled"),
)

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs gen col lt sgt capt cmdr adm gov sen rep rev mt ft".split()
)
_END_RE = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*\s+")
_NEXT_OK_RE = re.compile(r"[A-Z0-9\"'(\[\u201c\u2018]")


# --------------------------------------------------------------------------- sentences


def _sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end (before the following whitespace)."""
    ends = []
    for match in _END_RE.finditer(text):
        after = match.end()
        if after >= len(text) or not _NEXT_OK_RE.match(text, after):
            continue
        punct = match.group(0).rstrip()
        if punct == ".":
            word = re.search(r"(\S+)$", text[: match.start()])
            token = word.group(1) if word else ""
            if token.lower().strip("\"'([") in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", token):
                continue
        ends.append(match.start() + len(punct))
    return ends


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see the module docstring for the rule), stripped."""
    text = str(text)
    bounds = [0, *_sentence_ends(text), len(text)]
    return [p for a, b in zip(bounds, bounds[1:], strict=False) if (p := text[a:b].strip())]


def cut_sentences(text: str, max_sentences: int) -> tuple[str, int]:
    """``text`` cut after its ``max_sentences``-th sentence (stripped), and its sentence count."""
    text = str(text).strip()
    ends = [e for e in _sentence_ends(text) if text[:e].strip()]
    if len(ends) >= max_sentences:  # >= 1, as make_pairs checks
        return text[: ends[max_sentences - 1]].rstrip(), max_sentences
    return text, len(split_sentences(text))


# --------------------------------------------------------------------------- pairs


class PairSet(NamedTuple):
    """What :func:`make_pairs` returns: ``pairs``, the blind sheet (pair_id, prompt, text_1,
    text_2, an empty column per question and ``justification``); ``key`` (pair_id, index in
    the inputs, mle_side and mixce_side (1 or 2), mle/mixce sentences and chars); and
    ``dropped``, the count per reason of :data:`DROP_REASONS` plus ``total`` and ``kept``."""

    pairs: pd.DataFrame
    key: pd.DataFrame
    dropped: dict[str, int]


def make_pairs(
    a_texts: Sequence[str],
    b_texts: Sequence[str],
    *,
    prompts: Sequence[str],
    seed: int,
    min_sentences: int = 5,
    max_sentences: int = 8,
    min_chars: int = 400,
    max_chars: int = 2000,
    max_sentence_diff: int = 1,
    max_char_diff: int = 200,
    n_pairs: int | None = None,
    id_prefix: str = "pair",
) -> PairSet:
    """A blind A/B sheet from MLE (``a``) and MixCE (``b``) continuations, index-aligned with
    ``prompts``.  A paragraph is ``prompt + continuation`` (the decoded tokens after the
    prompt) cut to ``max_sentences``; a pair is
    kept when it passes the bounds (module docstring) and is not identical.  ``n_pairs``
    draws that many kept pairs (the paper: 105 per dataset).  Pairs are shuffled and MixCE is
    Text 1 in exactly half (odd count: one more or less, at random); same inputs and seed,
    same sheet.  Ids are ``<id_prefix>0001``, ... (a prefix per dataset pools sheets).
    ValueError: inputs of different lengths or inconsistent bounds."""
    if not len(a_texts) == len(b_texts) == len(prompts):
        raise ValueError(
            f"a_texts, b_texts and prompts must have the same length, got "
            f"{len(a_texts)}, {len(b_texts)}, {len(prompts)}"
        )
    if not 1 <= min_sentences <= max_sentences:
        raise ValueError(
            f"need 1 <= min_sentences <= max_sentences, got {min_sentences}, {max_sentences}"
        )
    if min_chars > max_chars:
        raise ValueError(f"need min_chars <= max_chars, got {min_chars}, {max_chars}")

    dropped = {reason: 0 for reason in DROP_REASONS}
    kept: list[dict[str, object]] = []
    for i, (a, b, prompt) in enumerate(zip(a_texts, b_texts, prompts, strict=True)):
        prompt = "" if prompt is None else str(prompt)
        conts = [
            "" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in (a, b)
        ]
        if not all(c.strip() for c in conts):
            dropped["empty"] += 1
            continue
        (pa, na), (pb, nb) = (cut_sentences(prompt + c, max_sentences) for c in conts)
        ca, cb = len(pa), len(pb)
        failed = {
            "too_few_sentences": min(na, nb) < min_sentences,
            "too_short": min(ca, cb) < min_chars,
            "too_long": max(ca, cb) > max_chars,
            "sentence_diff": abs(na - nb) > max_sentence_diff,
            "char_diff": abs(ca - cb) > max_char_diff,
            "identical": pa == pb,
        }
        reason = next((name for name, bad in failed.items() if bad), "")
        if reason:
            dropped[reason] += 1
            continue
        kept.append({"index": i, "prompt": prompt, "a": pa, "b": pb, "na": na, "nb": nb})

    rng = np.random.default_rng(seed)
    if n_pairs is not None:
        if n_pairs < 0:
            raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
        if n_pairs > len(kept):
            log.warning(
                "make_pairs: %d pairs asked for, only %d pass the filters", n_pairs, len(kept)
            )
        else:
            chosen = np.sort(rng.choice(len(kept), size=n_pairs, replace=False))
            dropped["not_sampled"] = len(kept) - n_pairs
            kept = [kept[j] for j in chosen]
    n = len(kept)
    order = rng.permutation(n)
    swap = np.zeros(n, dtype=bool)
    n_swap = n // 2 + (int(rng.integers(0, 2)) if n % 2 else 0)
    swap[rng.permutation(n)[:n_swap]] = True

    kept = [kept[int(j)] for j in order]
    a, b = [item["a"] for item in kept], [item["b"] for item in kept]
    pair_ids = [f"{id_prefix}{k + 1:04d}" for k in range(n)]
    pairs_df = pd.DataFrame(
        {
            "pair_id": pair_ids,
            "prompt": [item["prompt"] for item in kept],
            "text_1": [y if s else x for x, y, s in zip(a, b, swap, strict=True)],
            "text_2": [x if s else y for x, y, s in zip(a, b, swap, strict=True)],
            **{column: [""] * n for column in (*QUESTIONS, JUSTIFICATION)},
        }
    )
    key_df = pd.DataFrame(
        {
            "pair_id": pair_ids,
            "index": [item["index"] for item in kept],
            "mle_side": np.where(swap, 2, 1),
            "mixce_side": np.where(swap, 1, 2),
            "mle_sentences": [item["na"] for item in kept],
            "mixce_sentences": [item["nb"] for item in kept],
            "mle_chars": [len(text) for text in a],
            "mixce_chars": [len(text) for text in b],
        }
    )
    counts = {"total": len(a_texts), "kept": n, **dropped}
    log.info("make_pairs: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return PairSet(pairs_df, key_df, counts)


def _check_key(key_df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("pair_id", "mle_side") if c not in key_df.columns]
    if missing:
        raise ValueError(f"key is missing column(s): {', '.join(missing)}")
    if key_df["pair_id"].duplicated().any():
        dup = key_df.loc[key_df["pair_id"].duplicated(), "pair_id"].astype(str).tolist()
        raise ValueError(f"key column 'pair_id' has duplicates: {', '.join(dup[:5])}")
    sides = pd.to_numeric(key_df["mle_side"], errors="coerce")
    if not sides.isin([1, 2]).all():
        raise ValueError("key column 'mle_side' must hold 1 or 2")
    return key_df.assign(pair_id=key_df["pair_id"].astype(str), mle_side=sides.astype(int))


def unblind(pairs_df: pd.DataFrame, key_df: pd.DataFrame) -> pd.DataFrame:
    """The sheet with sources restored: pair_id, index, prompt, mle_text, mixce_text."""
    key = _check_key(key_df)
    merged = pairs_df.assign(pair_id=pairs_df["pair_id"].astype(str)).merge(
        key, on="pair_id", how="left", validate="one_to_one"
    )
    if merged["mle_side"].isna().any():
        bad = merged.loc[merged["mle_side"].isna(), "pair_id"].tolist()
        raise ValueError(f"pairs column 'pair_id': not in the key: {', '.join(bad[:5])}")
    first = merged["mle_side"] == 1
    return pd.DataFrame(
        {
            "pair_id": merged["pair_id"],
            "index": merged["index"] if "index" in merged.columns else np.nan,
            "prompt": merged["prompt"],
            "mle_text": np.where(first, merged["text_1"], merged["text_2"]),
            "mixce_text": np.where(first, merged["text_2"], merged["text_1"]),
        }
    )


# --------------------------------------------------------------------------- judgments


def _normalize_answer(value: object) -> str | None:
    """``"1"``, ``"2"`` or ``"tie"`` for an allowed answer (1, 2.0, " Tie "), else None."""
    text = str(value).strip().lower()
    text = {"1.0": "1", "2.0": "2"}.get(text, text)
    return text if text in ALLOWED_ANSWERS else None


def _bootstrap_p(diff: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float]:
    """One-sided bootstrap p-values over pairs (``diff[i]``: MixCE wins minus MLE wins of
    pair ``i``, pairs resampled with replacement): ``((k_le + 1) / (B + 1), (k_ge + 1) /
    (B + 1))``, ``k_le`` counting resamples where MixCE wins <= MLE wins (p for "MixCE
    preferred") and ``k_ge`` those where MLE wins <= MixCE wins (p for "MLE preferred")."""
    n = len(diff)
    if n == 0 or n_bootstrap <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    k_le = k_ge = 0
    chunk = max(1, 2_000_000 // n)
    for done in range(0, n_bootstrap, chunk):
        totals = diff[rng.integers(0, n, size=(min(chunk, n_bootstrap - done), n))].sum(axis=1)
        k_le += int((totals <= 0).sum())
        k_ge += int((totals >= 0).sum())
    return (k_le + 1) / (n_bootstrap + 1), (k_ge + 1) / (n_bootstrap + 1)


JUDGMENT_COLUMNS = tuple(
    "question n_pairs n_judgments mixce_wins mle_wins ties mixce_share mle_share tie_share "
    "p_mixce_better p_mle_better significant all_agree partial_agree no_agreement".split()
)


def judgments_table(
    judgments_df: pd.DataFrame,
    key_df: pd.DataFrame,
    *,
    questions: Sequence[str] = QUESTIONS,
    n_bootstrap: int = 10000,
    seed: int = 0,
    alpha: float = 0.01,
) -> pd.DataFrame:
    """Table 4 per question (columns :data:`JUDGMENT_COLUMNS`) from one row per pair and
    annotator (``pair_id``, per question ``1``/``2``/``tie``; case, spaces and CSV's 1.0/2.0
    accepted) and :func:`make_pairs`'s key: judgments won by MixCE / MLE and ties (the
    paper's Table 4), shares, ``p_mixce_better`` (add-one bootstrap p of "MixCE preferred":
    share of resamples, pairs with their annotators together, with MixCE wins <= MLE wins),
    ``p_mle_better`` (the mirror), ``significant`` (``p_mixce_better < alpha``; the paper's
    star at p < 0.01) and the agreement among pairs with >= 2 judgments (shares where all,
    some or none agree; the paper's Table 13).  ValueError names a missing column, a bad
    answer's column and pair ids, or ids not in the key."""
    key = _check_key(key_df)
    missing = [c for c in ("pair_id", *questions) if c not in judgments_df.columns]
    if missing:
        raise ValueError(f"judgments are missing column(s): {', '.join(missing)}")
    judgments = judgments_df.assign(pair_id=judgments_df["pair_id"].astype(str))
    unknown = sorted(set(judgments["pair_id"]) - set(key["pair_id"]))
    if unknown:
        raise ValueError(
            f"judgments column 'pair_id': {len(unknown)} id(s) not in the key: "
            f"{', '.join(unknown[:5])}"
        )
    mle_side = dict(zip(key["pair_id"], key["mle_side"].astype(str), strict=True))

    rows = []
    for q in questions:
        answers = judgments[q].map(_normalize_answer)
        bad = answers.isna()
        if bad.any():
            examples = [
                f"{v!r} (pair_id {p})"
                for v, p in zip(judgments.loc[bad, q], judgments.loc[bad, "pair_id"], strict=True)
            ]
            raise ValueError(
                f"judgments column {q!r}: {int(bad.sum())} answer(s) not one of "
                f"{', '.join(ALLOWED_ANSWERS)}: {', '.join(examples[:5])}"
            )
        winner = np.where(
            answers == "tie",
            "tie",
            np.where(answers == judgments["pair_id"].map(mle_side), "mle", "mixce"),
        )
        frame = pd.DataFrame({"pair_id": judgments["pair_id"], "winner": winner, "answer": answers})
        counts = frame.groupby("pair_id")["winner"].value_counts().unstack(fill_value=0)
        counts = counts.reindex(columns=["mixce", "mle", "tie"], fill_value=0)
        diff = (counts["mixce"] - counts["mle"]).to_numpy(dtype=np.int64)
        p_mix, p_mle = _bootstrap_p(diff, n_bootstrap, seed)
        total = len(frame)
        wins = {c: int(counts[c].sum()) for c in ("mixce", "mle", "tie")}

        agree = {"all_agree": math.nan, "partial_agree": math.nan, "no_agreement": math.nan}
        sizes = frame.groupby("pair_id")["answer"].size()
        multi = sizes[sizes >= 2].index
        if len(multi):
            top = (
                frame[frame["pair_id"].isin(multi)]
                .groupby("pair_id")["answer"]
                .agg(lambda s: s.value_counts().iloc[0])
            )
            k = sizes[multi]
            agree = {
                "all_agree": float((top == k).mean()),
                "partial_agree": float(((top > 1) & (top < k)).mean()),
                "no_agreement": float((top == 1).mean()),
            }
        rows.append(
            {
                "question": q,
                "n_pairs": int(len(counts)),
                "n_judgments": total,
                "mixce_wins": wins["mixce"],
                "mle_wins": wins["mle"],
                "ties": wins["tie"],
                **{f"{c}_share": wins[c] / total if total else math.nan for c in wins},
                "p_mixce_better": p_mix,
                "p_mle_better": p_mle,
                "significant": bool(p_mix < alpha) if not math.isnan(p_mix) else False,
                **agree,
            }
        )
    return pd.DataFrame(rows, columns=list(JUDGMENT_COLUMNS))


def table4(
    results: Mapping[str, pd.DataFrame],
    *,
    question: str = "better",
    alpha: float = 0.01,
) -> tuple[pd.DataFrame, str]:
    """Table 4: per dataset (``results``: dataset -> :func:`judgments_table`, in order) the
    judgments of ``question`` won by MixCE, by MLE and ties; a count gets a star when that
    side is preferred with bootstrap p < ``alpha``.  df columns: dataset, mixce_wins,
    mle_wins, ties, p_mixce_better, p_mle_better (NaN / ``--`` without the question)."""
    cols = ["dataset", "mixce_wins", "mle_wins", "ties", "p_mixce_better", "p_mle_better"]
    records, shown = [], []
    for ds, res in results.items():
        row = res[res["question"] == question] if "question" in res.columns else res.iloc[0:0]
        rec = {
            "dataset": ds,
            **{c: float(row[c].iloc[0]) if len(row) else math.nan for c in cols[1:]},
        }
        records.append(rec)
        cells = [dataset_label(ds)]
        for c, p in (("mixce_wins", "p_mixce_better"), ("mle_wins", "p_mle_better"), ("ties", "")):
            star = "*" if p and rec[p] < alpha else ""  # a NaN p gives no star
            cells.append(MISSING if math.isnan(rec[c]) else f"{int(rec[c])}{star}")
        shown.append(cells)
    caption = (
        "Human evaluation results (counts of judgments). The star (*) means significantly "
        f"better (bootstrap test over pairs, $p < {alpha:g}$)."
    )
    columns = header(["Which is better?"], ["MixCE", "MLE", "Same"], ["Dataset"])
    table = latex_table(pd.DataFrame(shown, columns=columns), caption, "tab:human-eval", labels=1)
    return pd.DataFrame(records, columns=cols), table
