r"""Small, generic helpers to write paper-style LaTeX tables.

Tables are ``booktabs`` tables (``\toprule``/``\midrule``/``\bottomrule``);
the document needs ``\usepackage{booktabs}``.  Cells are plain strings (which
are LaTeX-escaped) or :class:`Cell` objects, which add bold, raw LaTeX and
``\multicolumn`` spans.  Number formatting follows the paper: :func:`sci` gives
``7.40e-4``, ``0.0`` for an exact zero and ``--`` for a missing value.

Example::

    header = [["", Cell("Random (50%)", colspan=2)], ["Objective", "avg. js", "avg. 0s"]]
    body = [["MixCE", bold(sci(7.02e-4)), sci(1.25e-4)]]
    tex = booktabs_table(header, body, "lcc", "Results.", "tab:results")
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from numbers import Real

import pandas as pd

#: What a missing value is shown as.
MISSING = "--"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_SPECIALS_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


@dataclass(frozen=True)
class Cell:
    r"""One table cell.

    Attributes:
        text: the cell content; LaTeX-escaped unless ``raw``.
        bold: wrap the content in ``\textbf{}``.
        raw: ``text`` is LaTeX already (math such as ``$\eta$``, ``$\pm$``).
        colspan: number of columns spanned (``\multicolumn`` when > 1).
        align: column alignment for a ``\multicolumn`` (default ``c``); giving
            it on a single-column cell also emits ``\multicolumn{1}{align}``.
    """

    text: str
    bold: bool = False
    raw: bool = False
    colspan: int = 1
    align: str | None = None

    def __post_init__(self) -> None:
        if self.colspan < 1:
            raise ValueError(f"colspan must be >= 1, got {self.colspan}")


#: A cell as accepted by :func:`booktabs_table`.
CellLike = str | Cell


def escape_latex(text: str) -> str:
    """Escape the LaTeX special characters ``\\ & % $ # _ { } ~ ^`` in ``text``."""
    return _LATEX_SPECIALS_RE.sub(lambda m: _LATEX_SPECIALS[m.group(0)], str(text))


def bold(cell: CellLike) -> Cell:
    """Return ``cell`` (a string or :class:`Cell`) marked bold."""
    if isinstance(cell, Cell):
        return replace(cell, bold=True)
    return Cell(str(cell), bold=True)


def raw(text: str, **kwargs: object) -> Cell:
    """A :class:`Cell` whose text is LaTeX already (not escaped)."""
    return Cell(text, raw=True, **kwargs)  # type: ignore[arg-type]


def is_missing(x: object) -> bool:
    """True for None, NaN, ``pd.NA`` and ``NaT``."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def sci(x: float | None, digits: int = 2) -> str:
    """Format a number like the paper's tables: ``7.40e-4``, ``1.36e-1``.

    The exponent has no ``+`` sign and no leading zeros (``1.50e0``,
    ``2.00e3``).  An exact zero is ``0.0`` (the Gold rows), a missing value
    (None, NaN, ``pd.NA``) is ``--``, infinities are ``inf``/``-inf``.

    Args:
        x: the number.
        digits: digits after the decimal point of the mantissa.
    """
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
    """Format a number with a Python format ``spec`` (``"g"``, ``".2f"``); ``--`` if missing."""
    if is_missing(x):
        return MISSING
    return format(x, spec)


def count_columns(col_spec: str) -> int:
    """Number of columns a tabular column specification defines.

    Understands ``l c r X S``, ``p{..} m{..} b{..}``, ``*{n}{..}`` and ignores
    ``|``, ``@{..}``, ``!{..}``, ``>{..}`` and ``<{..}``.
    """

    def group(s: str, i: int) -> tuple[str, int]:
        if i >= len(s) or s[i] != "{":
            raise ValueError(f"bad column spec {col_spec!r}: expected '{{' at {i}")
        depth, j = 0, i
        while j < len(s):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1 : j], j + 1
            j += 1
        raise ValueError(f"bad column spec {col_spec!r}: unbalanced braces")

    def count(s: str) -> int:
        n, i = 0, 0
        while i < len(s):
            ch = s[i]
            if ch in "lcrXS":
                n += 1
                i += 1
            elif ch in "pmb":
                _, i = group(s, i + 1)
                n += 1
            elif ch in "@!><":
                _, i = group(s, i + 1)
            elif ch == "*":
                times, i = group(s, i + 1)
                inner, i = group(s, i)
                n += int(times) * count(inner)
            elif ch in "| \t\n":
                i += 1
            else:
                raise ValueError(f"bad column spec {col_spec!r}: unknown {ch!r}")
        return n

    return count(col_spec)


def render_cell(cell: CellLike) -> str:
    """LaTeX source of one cell (escaped, bold, ``\\multicolumn`` as needed)."""
    if not isinstance(cell, Cell):
        cell = Cell(str(cell))
    content = cell.text if cell.raw else escape_latex(cell.text)
    if cell.bold and content:
        content = rf"\textbf{{{content}}}"
    if cell.colspan > 1 or cell.align is not None:
        align = cell.align or "c"
        content = rf"\multicolumn{{{cell.colspan}}}{{{align}}}{{{content}}}"
    return content


def _width(row: Sequence[CellLike]) -> int:
    return sum(c.colspan if isinstance(c, Cell) else 1 for c in row)


def render_row(row: Sequence[CellLike]) -> str:
    """One tabular row: cells joined by ``&`` and ended by ``\\\\``."""
    return " & ".join(render_cell(c) for c in row) + r" \\"


def _cmidrules(row: Sequence[CellLike]) -> str:
    r"""``\cmidrule`` under each non-empty multi-column cell of a header row."""
    rules, col = [], 1
    for c in row:
        span = c.colspan if isinstance(c, Cell) else 1
        text = c.text if isinstance(c, Cell) else str(c)
        if span > 1 and text.strip():
            rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
        col += span
    return " ".join(rules)


def booktabs_table(
    header_rows: Sequence[Sequence[CellLike]],
    body_rows: Sequence[Sequence[CellLike]],
    col_spec: str,
    caption: CellLike,
    label: str,
    midrules_after: Iterable[int] = (),
    *,
    cmidrules: bool = True,
    placement: str = "t",
    size: str | None = None,
) -> str:
    r"""A complete LaTeX ``table`` environment in booktabs style.

    Layout: ``\toprule``, the header rows (each followed by ``\cmidrule``\ s
    under its non-empty ``\multicolumn`` cells when ``cmidrules``), a
    ``\midrule``, the body rows with a ``\midrule`` after each body row index
    in ``midrules_after`` (0-based; an index of the last row is ignored),
    ``\bottomrule``, then the caption and label.

    Args:
        header_rows: header rows; cells are strings (escaped) or :class:`Cell`.
        body_rows: body rows, same cell types.
        col_spec: tabular column spec, e.g. ``"llcccc"``.
        caption: caption text (a string is escaped; pass :func:`raw` for LaTeX).
        label: ``\label`` key, used verbatim.
        midrules_after: body row indices followed by a ``\midrule``.
        cmidrules: draw ``\cmidrule(lr)`` under multi-column header cells.
        placement: float placement (``t``, ``h``, ...); empty for none.
        size: optional size command such as ``small`` (no backslash).

    Returns:
        The LaTeX source, ending with a newline.

    Raises:
        ValueError: a row spans a different number of columns than ``col_spec``
            or a midrule index is out of range.
    """
    ncols = count_columns(col_spec)
    for kind, rows in (("header", header_rows), ("body", body_rows)):
        for i, row in enumerate(rows):
            if _width(row) != ncols:
                raise ValueError(
                    f"{kind} row {i} spans {_width(row)} columns, col_spec {col_spec!r} has {ncols}"
                )
    rules = set()
    for i in midrules_after:
        if not 0 <= i < len(body_rows):
            raise ValueError(f"midrules_after index {i} out of range for {len(body_rows)} rows")
        if i != len(body_rows) - 1:
            rules.add(i)

    lines = [
        "% Generated by mixce.report; needs \\usepackage{booktabs}.",
        rf"\begin{{table}}[{placement}]" if placement else r"\begin{table}",
        r"\centering",
    ]
    if size:
        lines.append(f"\\{size}")
    lines += [rf"\begin{{tabular}}{{{col_spec}}}", r"\toprule"]
    for row in header_rows:
        lines.append(render_row(row))
        if cmidrules:
            rule = _cmidrules(row)
            if rule:
                lines.append(rule)
    if header_rows:
        lines.append(r"\midrule")
    for i, row in enumerate(body_rows):
        lines.append(render_row(row))
        if i in rules:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines.append(rf"\caption{{{render_cell(caption)}}}")
    lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
