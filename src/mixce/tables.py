r"""Paper tables as data: a frame of display strings rendered by one function over pandas'
``Styler.to_latex`` (booktabs rules; the document needs ``\usepackage{booktabs}``), the
paper's number formats and the display names shared by both tracks."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import groupby
from numbers import Real

import numpy as np
import pandas as pd

#: What a missing value is shown as.
MISSING = "--"

DATASET_LABELS = {"wikitext": "WikiText", "webtext": "WebText", "writingprompts": "WritingPrompts"}
MODEL_LABELS = {"small": "Small", "medium": "Medium", "large": "Large"}
#: Display names of the objectives of both tracks (the synthetic ones as in the paper's tables).
OBJECTIVE_LABELS = {
    "forward_kl": "For. KL",
    "reverse_kl": "Rev. KL",
    "mix_kl": "Mix KLs",
    "js": "JS",
    "mixce_star": "MixCE*",
    "mixce": "MixCE",
    "mle": "MLE",
    "tailr": "TaiLr",
    "loss_truncation": "Loss trunc.",
    "unlikelihood": "Unlikelihood",
    "truncated_ce": "Truncated CE",
    "lfd": "LFD",
    "human": "Human",
}

_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def dataset_label(name: str) -> str:
    """Display name of a dataset (``wikitext`` -> ``WikiText``; unknown names title-cased)."""
    return DATASET_LABELS.get(name, str(name).title())


def model_label(name: str) -> str:
    """Display name of a model size (``small`` -> ``Small``; unknown names title-cased)."""
    return MODEL_LABELS.get(name, str(name).title())


def objective_label(name: str) -> str:
    """Display name of an objective (unknown names title-cased, ``_`` as a space)."""
    return OBJECTIVE_LABELS.get(name, name.replace("_", " ").title())


def escape(text: str) -> str:
    """``text`` with the LaTeX special characters escaped outside ``$...$`` math."""
    parts = re.split(r"(\$[^$]*\$)", str(text))
    return "".join(
        part if i % 2 else re.sub(r"[\\&%$#_{}~^]", lambda m: _SPECIALS[m[0]], part)
        for i, part in enumerate(parts)
    )


def is_missing(x: object) -> bool:
    """True for None, NaN, ``pd.NA`` and ``NaT``."""
    try:
        return x is None or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def sci(x: float | None, digits: int = 2) -> str:
    """A number as in the paper's tables: ``7.40e-4``, ``1.50e0`` (no ``+``, no leading
    zeros in the exponent); an exact zero is ``0.0`` (the Gold rows), a missing value ``--``,
    infinities ``inf``/``-inf``."""
    if is_missing(x):
        return MISSING
    if not isinstance(x, Real):
        raise TypeError(f"sci() needs a real number, got {type(x).__name__}")
    v = float(x)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0.0:
        return "0.0"
    mantissa, exponent = f"{v:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def num(x: float | None, spec: str = "g") -> str:
    """A number with a Python format ``spec`` (``"g"``, ``".2f"``); ``--`` if missing."""
    return MISSING if is_missing(x) else format(x, spec)


def closest(values: Sequence[float], ref: float, spec: str) -> list[bool]:
    """Which of ``values`` are closest to ``ref`` compared at the displayed precision of the
    format ``spec`` (a displayed tie marks all; none when ``ref`` is missing)."""
    decimals = int(spec.strip(".f")) if spec.endswith("f") else 6

    def units(x: float) -> float:
        return math.nan if math.isnan(x) else int(round(round(x, decimals) * 10**decimals))

    gaps = [abs(units(v) - units(ref)) for v in values]
    best = min((g for g in gaps if not math.isnan(g)), default=math.nan)
    return [g == best for g in gaps]


def latex_table(
    cells: pd.DataFrame,
    caption: str,
    label: str,
    *,
    labels: int = 2,
    bold: np.ndarray | None = None,
    midrules: Sequence[int] = (),
    size: str | None = None,
) -> str:
    r"""``cells`` as a booktabs ``table``: the first ``labels`` columns left-aligned, the rest
    centred; a (group, header) MultiIndex of columns gives a group row with a ``\cmidrule``
    under each named group of several columns.  Cells, headers and the caption are
    LaTeX-escaped except inside ``$...$``; a missing cell is ``--``.  ``bold``: a boolean
    array of the shape of ``cells``; ``midrules``: body rows followed by a ``\midrule``."""
    styler = cells.style.hide(axis="index").format(escape="latex-math", na_rep=MISSING)
    styler = styler.format_index(escape="latex-math", axis=1)
    if bold is not None:
        styler = styler.apply(lambda _: np.where(bold, "textbf:--rwrap;", ""), axis=None)
    if size:
        styler = styler.set_table_styles([{"selector": size, "props": ":;"}])
    tex = styler.to_latex(
        column_format="l" * labels + "c" * (cells.shape[1] - labels),
        position="t",
        position_float="centering",
        hrules=True,
        label=label,
        caption=escape(caption),
        multicol_align="c",
    )
    # blank group cells as blank cells; caption and label below the table, as in the paper
    tex = re.sub(r"\\multicolumn\{(\d+)\}\{c\}\{\}", lambda m: " & " * (int(m[1]) - 1), tex)
    lines = [line for line in tex.splitlines() if not line.startswith((r"\caption", r"\label"))]
    lines[-1:-1] = [line for line in tex.splitlines() if line.startswith((r"\caption", r"\label"))]
    top = lines.index(r"\toprule")
    if cells.columns.nlevels == 2:
        rules, col = [], 1
        for name, group in groupby(cells.columns.get_level_values(0)):
            run = len(list(group))
            if run > 1 and str(name).strip():
                rules.append(rf"\cmidrule(lr){{{col}-{col + run - 1}}}")
            col += run
        if rules:
            lines.insert(top + 2, " ".join(rules))
    body = lines.index(r"\midrule", top) + 1
    for i in sorted({i for i in midrules if i < len(cells) - 1}, reverse=True):
        lines.insert(body + i + 1, r"\midrule")
    return "\n".join(["% Generated by mixce.report; needs \\usepackage{booktabs}.", *lines]) + "\n"


def header(groups: Sequence[str], heads: Sequence[str], labels: Sequence[str]) -> pd.MultiIndex:
    """Columns of a grouped table: the ``labels`` columns, then ``heads`` under each group."""
    return pd.MultiIndex.from_tuples(
        [("", h) for h in labels] + [(g, h) for g in groups for h in heads]
    )
