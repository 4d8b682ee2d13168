"""Text cleaning for the GPT-2 datasets (pure functions, no I/O).

Per format (``CLEANERS``; REFERENCE.md, section "Data"):

- ``wikitext``: a document is one non-empty line that does not start with ``=`` (headings);
  :func:`clean_wikitext_line` drops the others, then :func:`detokenize` undoes the tokenization.
- ``webtext``: newlines replaced by a space (:func:`clean_webtext`); no detokenization, the
  texts are raw web text.
- ``writingprompts``: ``"{prompt} {story}"``, ``<newline>`` replaced by a space, the quote
  tokens ````` and ``''`` made ``"``, then detokenized (:func:`clean_writingprompts`). The
  prompt's tag (``[ WP ]``, ``[ EU ]``, ...) is kept: the reference does not say to remove it;
  detokenization turns it into ``[WP]``.
- ``plain`` (local files and the embedded corpora; also registered as ``jsonl``, ``txt`` and
  ``embedded``): whitespace normalised only (:func:`clean_plain`).

Every cleaner ends by collapsing runs of whitespace into one space and stripping the ends, and
returns ``None`` or ``""`` for a text that is not a document.

Length filter: :func:`word_count` counts whitespace-separated words of the *cleaned* text and
:func:`length_ok` keeps ``min_words < words < max_words`` (both bounds exclusive; 50 and 1000
by default).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "CLEANERS",
    "clean_plain",
    "clean_webtext",
    "clean_wikitext",
    "clean_wikitext_line",
    "clean_writingprompts",
    "clean_writingprompts_text",
    "cleaner_for",
    "detokenize",
    "length_ok",
    "word_count",
]

MIN_WORDS = 50
MAX_WORDS = 1000

# " @-@ ", " @,@ ", " @.@ " (WikiText's split hyphens, thousands separators and decimals)
_AT_SPLIT = re.compile(r"\s*@([-,.])@\s*")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?%)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{$]) +")
_CONTRACTION = re.compile(r" +(n't|'s|'re|'ve|'m|'ll|'d)\b", re.IGNORECASE)
_PLURAL_POSSESSIVE = re.compile(r"(\ws) +' (?=\w)")
_DOUBLE_QUOTED = re.compile(r'"\s*([^"]*?)\s*"')
_WHITESPACE = re.compile(r"\s+")


def _collapse(text: str) -> str:
    """Every run of whitespace (newlines included) as one space; ends stripped."""
    return _WHITESPACE.sub(" ", text).strip()


def detokenize(text: str) -> str:
    """Undo Moses / WikiText style tokenization with a few fixed rules, in this order.

    1. ``" @-@ "`` -> ``"-"``, ``" @,@ "`` -> ``","``, ``" @.@ "`` -> ``"."``.
    2. Whitespace collapsed (one space between words, ends stripped).
    3. No space before ``, . ; : ! ? % ) ] }`` and ``...``.
    4. No space after ``( [ {`` and ``$``.
    5. Contractions and possessives attached: ``do n't`` -> ``don't``, ``John 's`` ->
       ``John's`` (also ``'re 've 'm 'll 'd``); ``players ' union`` -> ``players' union``.
    6. Double quotes paired left to right, with the spaces just inside each pair removed:
       ``say " hi there " now`` -> ``say "hi there" now``. An unpaired last quote is left.

    Single quotes used as quotation marks are left alone (they cannot be told apart from
    apostrophes without a tokenizer). The rules are deterministic and idempotent on their own
    output.
    """
    text = _AT_SPLIT.sub(r"\1", text)
    text = _collapse(text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _CONTRACTION.sub(r"\1", text)
    text = _PLURAL_POSSESSIVE.sub(r"\1' ", text)
    text = _DOUBLE_QUOTED.sub(r'"\1"', text)
    return text.strip()


def clean_wikitext_line(line: str) -> str | None:
    """A WikiText line with its ends stripped; None for empty lines and ``=`` headings."""
    line = line.strip()
    if not line or line.startswith("="):
        return None
    return line


def clean_wikitext(line: str) -> str | None:
    """:func:`clean_wikitext_line`, then :func:`detokenize`; None when the line is no document."""
    kept = clean_wikitext_line(line)
    return None if kept is None else detokenize(kept)


def clean_webtext(text: str) -> str:
    """WebText: newlines (and every other whitespace run) replaced by one space."""
    return _collapse(text)


def clean_writingprompts_text(text: str) -> str:
    """WritingPrompts on an already joined ``"{prompt} {story}"`` text.

    ``<newline>`` -> space, ````` and ``''`` -> ``"``, then :func:`detokenize`.
    """
    text = text.replace("<newline>", " ")
    text = text.replace("``", '"').replace("''", '"')
    return detokenize(text)


def clean_writingprompts(prompt: str, story: str) -> str:
    """WritingPrompts: ``"{prompt} {story}"`` cleaned by :func:`clean_writingprompts_text`.

    The prompt's ``[ WP ]``-style tag is kept (see the module docstring).
    """
    return clean_writingprompts_text(f"{prompt.strip()} {story.strip()}")


def clean_plain(text: str) -> str:
    """Whitespace normalised: runs of whitespace as one space, ends stripped."""
    return _collapse(text)


CLEANERS: dict[str, Callable[[str], str | None]] = {
    "wikitext": clean_wikitext,
    "webtext": clean_webtext,
    "writingprompts": clean_writingprompts_text,
    "plain": clean_plain,
    "jsonl": clean_plain,
    "txt": clean_plain,
    "embedded": clean_plain,
}


def cleaner_for(fmt: str) -> Callable[[str], str | None]:
    """The cleaner of a dataset format (a key of :data:`CLEANERS`)."""
    try:
        return CLEANERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown text format {fmt!r}: expected one of {', '.join(sorted(CLEANERS))}"
        ) from None


def word_count(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())


def length_ok(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> bool:
    """Whether ``min_words < word_count(text) < max_words`` (both bounds exclusive)."""
    return min_words < word_count(text) < max_words
