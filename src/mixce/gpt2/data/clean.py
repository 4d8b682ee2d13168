"""Text cleaning for the GPT-2 datasets (pure functions, no I/O).

Two sets of cleaners, chosen by the protocol point ``detokenizer`` (docs/PROTOCOL.md;
:func:`cleaner_for`):

``clean`` (``CLEANERS``; the project's rules, docs/PROTOCOL.md):

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

Every ``clean`` cleaner ends by collapsing runs of whitespace into one space and stripping the
ends, and returns ``None`` or ``""`` for a text that is not a document.

``official`` (``OFFICIAL_CLEANERS``; as the authors' released data scripts do it):

- ``wikitext`` (:func:`clean_wikitext_official`): line breaks made spaces, ends stripped,
  blank and ``=`` lines dropped; every ``" @"`` and then every ``"@ "`` deleted
  (:func:`strip_at_marks`); then the Moses detokenizer for English (:func:`moses_detokenize`).
- ``webtext`` (:func:`clean_webtext_official`): line breaks made spaces and the ends stripped;
  other whitespace is left as it is (a paragraph break ``"\n\n"`` becomes two spaces).
- ``writingprompts`` (:func:`clean_writingprompts_official`): ``<newline>`` made a space,
  ````` and ``''`` made ``"``, then the Moses detokenizer.
- the plain formats: :func:`clean_plain`, as under ``clean`` (the released code has none).

Length filter: :func:`word_count` counts whitespace-separated words of the *cleaned* text and
:func:`length_ok` keeps ``min_words < words < max_words`` (both bounds exclusive; 50 and 1000
by default). The released code applies the same rule to the same (cleaned, detokenized) text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mixce.gpt2.protocol import SETTINGS, Setting

__all__ = [
    "CLEANERS",
    "OFFICIAL_CLEANERS",
    "clean_plain",
    "clean_webtext",
    "clean_webtext_official",
    "clean_wikitext",
    "clean_wikitext_line",
    "clean_wikitext_official",
    "clean_writingprompts",
    "clean_writingprompts_official",
    "clean_writingprompts_text",
    "cleaner_for",
    "detokenize",
    "length_ok",
    "moses_detokenize",
    "strip_at_marks",
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


# --------------------------------------------------------------------------- official

# The Moses script leaves a line that looks like one XML / HTML tag as it is.
_TAG_LINE = re.compile(r"<.+>")
# Stand-ins while sacremoses runs (Unicode noncharacters, reserved for internal use): an empty
# word, a word that must not be taken for a contraction, and the whitespace characters other
# than the space, which the Perl script keeps inside words but sacremoses splits at.
_EMPTY_WORD = "\ufdd0"
_NOT_CONTRACTION = "\ufdd1"
_OTHER_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c != " ")
_HIDE_SPACES = {ord(c): 0xFDD2 + k for k, c in enumerate(_OTHER_SPACES)}
_SHOW_SPACES = {v: k for k, v in _HIDE_SPACES.items()}
_STAND_INS = re.compile("[\ufdd0-\ufdef]")


@functools.cache
def _moses() -> Any:
    import regex
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang="en")
    # Perl's \p{IsAlpha} and \p{IsAlnum}: letters of every script (and decimal digits)
    perl_contraction = regex.compile(r"^'\p{Alphabetic}")
    ends_alnum = regex.compile(r"[\p{Alphabetic}\p{Nd}]$")
    return detok, MosesDetokenizer.IS_ENGLISH_CONTRACTION, perl_contraction, ends_alnum


def moses_detokenize(text: str) -> str:
    """The Moses detokenizer for English (``detokenizer.perl -l en``), on one line.

    Built on sacremoses' ``MosesDetokenizer(lang="en")``, with the input prepared so that the
    result is the Perl script's: XML entities unescaped once (``&amp;`` -> ``&``, ``&quot;``
    -> ``"``, ...); no space before ``, . ? ! : ; % ) ] }``, none after ``( [ {``, ``¿ ¡``
    and currency signs; a word starting with ``'`` and a letter (``'s``, ``'re``) joined to
    the word before when that word ends in a letter or digit (``( Smith ) 's`` stays apart),
    while ``n't`` stays a word of its own (``did n't``); quotes ``"`` and ``'`` paired left
    to right and closed onto the words inside; a lone ``'`` after a word ending in ``s``
    joined as a possessive; runs of spaces collapsed and the ends stripped. Words are split
    at single spaces only, as in the Perl script: a tab or a no-break space stays inside its
    word, and a run of spaces holds empty words (so ``( <2 spaces> a`` stays ``( a``).
    A line that is a single ``<...>`` tag is returned as it is, and a blank line as ``""``.

    Checked against the Perl script (mosesdecoder master, last changed 2020) on 90,000 random
    lines of words in several scripts, punctuation, quotes, entities, tabs and no-break
    spaces: the same output on every line but blank ones (which the released code strips).
    """
    line = text[:-1] if text.endswith("\n") else text
    if _TAG_LINE.fullmatch(line) or not line.strip():
        return line.strip()
    detok, contraction, perl_contraction, ends_alnum = _moses()
    if _STAND_INS.search(line):  # cannot hide anything in this text: sacremoses as it is
        return detok.detokenize(line.split())
    line = detok.unescape_xml(f" {line} ".replace(" @-@ ", "-"))
    words = line.translate(_HIDE_SPACES).split(" ")
    while words and not words[-1]:
        words.pop()
    while words and not words[0]:
        words.pop(0)
    marked: list[str] = []
    for i, word in enumerate(words):
        joins = i > 0 and bool(perl_contraction.search(word) and ends_alnum.search(words[i - 1]))
        if not word:
            word = _EMPTY_WORD
        elif contraction.search(word) and not joins:  # sacremoses would join it, Perl does not
            word = _NOT_CONTRACTION + word
        elif joins and not contraction.search(word):  # Perl joins it, sacremoses would not
            marked[-1] += word
            continue
        marked.append(word)
    out = detok.detokenize(marked, unescape=False)
    out = out.replace(_EMPTY_WORD, "").replace(_NOT_CONTRACTION, "").translate(_SHOW_SPACES)
    return re.sub(" +", " ", out).strip(" ")


def strip_at_marks(text: str) -> str:
    """Every ``" @"`` deleted, then every ``"@ "`` (the released WikiText script's two ``sed``
    passes): ``"1 @,@ 000"`` -> ``"1,000"``, ``"a @-@ b"`` -> ``"a-b"``, ``"x @ y"`` -> ``"x y"``.
    """
    return text.replace(" @", "").replace("@ ", "")


def _single_line(text: str) -> str:
    """Each ``"\\n"`` and each ``"\\r"`` made a space, the ends stripped."""
    return text.replace("\n", " ").replace("\r", " ").strip()


def clean_wikitext_official(line: str) -> str | None:
    """WikiText as released: line breaks made spaces, ends stripped; ``None`` for a blank line
    or an ``=`` heading; otherwise :func:`strip_at_marks`, then :func:`moses_detokenize`."""
    line = _single_line(line)
    if not line or line.startswith("="):
        return None
    return moses_detokenize(strip_at_marks(line)).strip()


def clean_webtext_official(text: str) -> str:
    """WebText as released: line breaks made spaces, ends stripped, nothing else.

    Runs of spaces stay (``"a.\\n\\nB"`` -> ``"a.  B"``); there is no detokenization. The
    released script replaces ``"\\n"`` only; a ``"\\r"`` would end a line of its output file
    and so split the text in two when it is read back. Here ``"\\r"`` is made a space too.
    """
    return _single_line(text)


def clean_writingprompts_official(text: str) -> str:
    """WritingPrompts as released, on the joined ``"{prompt} {story}"`` text.

    ``<newline>`` -> space, ````` and ``''`` -> ``"``, then :func:`moses_detokenize`. The released
    script makes the replacements in the story only and strips the story before joining; the
    joined raw text (:func:`mixce.gpt2.data.sources.read_raw`) no longer says where the prompt ends,
    so here the replacements apply to the prompt too (a prompt's ````` and ``''`` stay as they
    are in the released data), and a story that opens with ``<newline>`` leaves a run of
    spaces after the prompt (an empty word for the Moses rules).
    """
    text = _single_line(text.replace("<newline>", " "))
    return moses_detokenize(text.replace("``", '"').replace("''", '"')).strip()


OFFICIAL_CLEANERS: dict[str, Callable[[str], str | None]] = {
    **CLEANERS,
    "wikitext": clean_wikitext_official,
    "webtext": clean_webtext_official,
    "writingprompts": clean_writingprompts_official,
}


def cleaner_for(fmt: str, detokenizer: Setting = "official") -> Callable[[str], str | None]:
    """The cleaner of a dataset format (a key of :data:`CLEANERS`) under the protocol point
    ``detokenizer``: :data:`OFFICIAL_CLEANERS` (``"official"``) or :data:`CLEANERS`
    (``"clean"``)."""
    if detokenizer not in SETTINGS:
        raise ValueError(f"detokenizer: {detokenizer!r} is not one of {', '.join(SETTINGS)}")
    table = OFFICIAL_CLEANERS if detokenizer == "official" else CLEANERS
    try:
        return table[fmt]
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
