"""Text cleaning for the GPT-2 datasets (pure functions), chosen by the protocol point
``detokenizer`` (:func:`cleaner_for`; docs/PROTOCOL.md); ``None`` or ``""`` means no document.

``clean`` (:data:`CLEANERS`, the project's rules): ``wikitext``: a non-empty line not starting
with ``=``, then :func:`detokenize`. ``webtext`` and ``plain`` (local files, embedded corpora;
also ``jsonl``, ``txt``, ``embedded``): whitespace runs collapsed, no detokenization.
``writingprompts``: :func:`clean_writingprompts_text`; the prompt's tag (``[ WP ]`` ...) is
kept, as the reference does not say to remove it (detokenized to ``[WP]``).

``official`` (:data:`OFFICIAL_CLEANERS`, as the authors' released data scripts do it):
``wikitext``, ``webtext`` and ``writingprompts`` by the ``*_official`` functions (the Moses
detokenizer, :func:`moses_detokenize`); the plain formats as under ``clean`` (the released
code has none).

Length filter: :func:`length_ok` keeps ``min_words < words < max_words`` (both exclusive; 50
and 1000 by default) on whitespace words of the *cleaned* text, as the released code does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mixce.gpt2.protocol import SETTINGS, Setting

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


def clean_plain(text: str) -> str:
    """Every run of whitespace (newlines included) as one space; ends stripped."""
    return _WHITESPACE.sub(" ", text).strip()


clean_webtext = clean_plain  # WebText's clean cleaner: newlines made spaces like any run


def detokenize(text: str) -> str:
    """Undo Moses / WikiText style tokenization with a few fixed rules, in this order.

    1. ``" @-@ "`` -> ``"-"``, ``" @,@ "`` -> ``","``, ``" @.@ "`` -> ``"."``.
    2. Whitespace collapsed (one space between words, ends stripped).
    3. No space before ``, . ; : ! ? % ) ] }`` and ``...``; none after ``( [ {`` and ``$``.
    4. Contractions and possessives attached: ``do n't`` -> ``don't``, ``John 's`` ->
       ``John's`` (also ``'re 've 'm 'll 'd``); ``players ' union`` -> ``players' union``.
    5. Double quotes paired left to right, the spaces just inside each pair removed
       (``say " hi there " now`` -> ``say "hi there" now``); an unpaired last one is left.

    Single quotes used as quotation marks are left alone (they cannot be told apart from
    apostrophes without a tokenizer). Deterministic and idempotent on its own output.
    """
    text = clean_plain(_AT_SPLIT.sub(r"\1", text))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _CONTRACTION.sub(r"\1", text)
    text = _PLURAL_POSSESSIVE.sub(r"\1' ", text)
    text = _DOUBLE_QUOTED.sub(r'"\1"', text)
    return text.strip()


def clean_wikitext_line(line: str) -> str | None:
    """A WikiText line with its ends stripped; None for empty lines and ``=`` headings."""
    line = line.strip()
    return None if not line or line.startswith("=") else line


def clean_wikitext(line: str) -> str | None:
    """:func:`clean_wikitext_line`, then :func:`detokenize`; None when the line is no document."""
    kept = clean_wikitext_line(line)
    return None if kept is None else detokenize(kept)


def clean_writingprompts_text(text: str) -> str:
    """WritingPrompts on the joined ``"{prompt} {story}"``: ``<newline>`` -> space, `````
    and ``''`` -> ``"``, then :func:`detokenize`."""
    return detokenize(text.replace("<newline>", " ").replace("``", '"').replace("''", '"'))


def clean_writingprompts(prompt: str, story: str) -> str:
    """:func:`clean_writingprompts_text` on ``"{prompt} {story}"`` (the tag is kept)."""
    return clean_writingprompts_text(f"{prompt.strip()} {story.strip()}")


CLEANERS: dict[str, Callable[[str], str | None]] = {
    "wikitext": clean_wikitext,
    "webtext": clean_webtext,
    "writingprompts": clean_writingprompts_text,
    "plain": clean_plain,
    "jsonl": clean_plain,
    "txt": clean_plain,
    "embedded": clean_plain,
}


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
    """The Moses detokenizer for English (``detokenizer.perl -l en``) on one line.

    sacremoses' ``MosesDetokenizer(lang="en")`` with the input prepared so that the result is
    the Perl script's: words split at single spaces only (a tab or no-break space stays inside
    its word; a run of spaces holds empty words, so ``( <2 spaces> a`` stays ``( a``); ``'s``,
    ``'re`` ... joined only to a word ending in a letter or digit (``( Smith ) 's`` stays
    apart), ``n't`` a word of its own (``did n't``); entities unescaped once; a line that is
    one ``<...>`` tag returned as it is, a blank line as ``""``. Checked against the Perl
    script (mosesdecoder master, last changed 2020) on 90,000 random lines of words in several
    scripts, punctuation, quotes, entities, tabs and no-break spaces: the same output on every
    line but blank ones (which the released code strips).
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
    passes): ``"1 @,@ 000"`` -> ``"1,000"``, ``"x @ y"`` -> ``"x y"``."""
    return text.replace(" @", "").replace("@ ", "")


def _single_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ").strip()


def clean_wikitext_official(line: str) -> str | None:
    """WikiText as released: :func:`_single_line`; ``None`` for a blank line or an ``=``
    heading; otherwise :func:`strip_at_marks`, then :func:`moses_detokenize`."""
    line = _single_line(line)
    if not line or line.startswith("="):
        return None
    return moses_detokenize(strip_at_marks(line)).strip()


def clean_webtext_official(text: str) -> str:
    """WebText as released: :func:`_single_line` only; runs of spaces stay (``"a.\\n\\nB"``
    -> ``"a.  B"``). The released script replaces ``"\\n"`` only; a ``"\\r"`` would end a
    line of its output file and split the text in two when read back, so it is a space here."""
    return _single_line(text)


def clean_writingprompts_official(text: str) -> str:
    """WritingPrompts as released, on the joined ``"{prompt} {story}"``: ``<newline>`` ->
    space, ````` and ``''`` -> ``"``, then :func:`moses_detokenize`. The released script
    replaces in the story only and strips it before joining; the joined raw text
    (:func:`.sources.read_raw`) no longer says where the prompt ends, so the replacements
    reach the prompt too (a prompt's ````` / ``''`` stay in the released data), and a story
    opening with ``<newline>`` leaves a run of spaces after the prompt (an empty Moses word).
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
    """The cleaner of a format (a key of :data:`CLEANERS`) under the point ``detokenizer``."""
    if detokenizer not in SETTINGS:
        raise ValueError(f"detokenizer: {detokenizer!r} is not one of {', '.join(SETTINGS)}")
    table = OFFICIAL_CLEANERS if detokenizer == "official" else CLEANERS
    if fmt not in table:
        raise ValueError(
            f"unknown text format {fmt!r}: expected one of {', '.join(sorted(CLEANERS))}"
        )
    return table[fmt]


def word_count(text: str) -> int:
    return len(text.split())


def length_ok(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> bool:
    """Whether ``min_words < word_count(text) < max_words`` (both bounds exclusive)."""
    return min_words < word_count(text) < max_words
