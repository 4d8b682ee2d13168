"""Text corpora: gensim's embedded English texts, and .jsonl / .txt files of texts.

The texts of the synthetic real-text target (synthetic.real_text.source, :func:`load_texts`)
and of the GPT-2 ``embedded`` and ``local`` sources. ``"embedded"``: the corpora gensim ships
with its tests (installed from PyPI, no network): the 300 news articles of
``lee_background.cor`` (one per line), then the paragraphs (blank-line separated, at least
:data:`MIN_PARAGRAPH_WORDS` words) of the Wikipedia extract :data:`WIKI_FILE` (pages parsed
with ``gensim.corpora.wikicorpus.extract_pages``, cleaned with ``filter_wiki``), in file order.
"""

from __future__ import annotations

import bz2
import functools
import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE_KEY = "synthetic.real_text.source"
NEWS_FILE = "lee_background.cor"
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MIN_PARAGRAPH_WORDS = 20

_BLANK_LINES = re.compile(r"\n\s*\n")
_WIKI_QUOTES = re.compile(r"'{2,}")  # bold / italic markup that filter_wiki leaves in
_WIKI_HEADING = re.compile(r"={2,}[^=\n]*={2,}")  # "== Section ==" lines


def datapath(name: str) -> str:
    """``gensim.test.utils.datapath(name)``, without the INFO logs of the demo Dictionary that
    importing ``gensim.test.utils`` builds."""
    gensim_logger = logging.getLogger("gensim")
    level = gensim_logger.level
    gensim_logger.setLevel(logging.WARNING)
    try:
        from gensim.test.utils import datapath as gensim_datapath
    finally:
        gensim_logger.setLevel(level)
    return gensim_datapath(name)


def news_texts() -> list[str]:
    """The 300 news articles of gensim's ``lee_background.cor``, whitespace collapsed."""
    with open(datapath(NEWS_FILE), encoding="utf-8", errors="replace") as handle:
        return [t for t in (" ".join(line.split()) for line in handle) if t]


def wiki_paragraphs(min_words: int = MIN_PARAGRAPH_WORDS) -> list[str]:
    """Paragraphs (>= ``min_words`` words) of gensim's shortened English Wikipedia dump."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    paragraphs: list[str] = []
    with bz2.open(datapath(WIKI_FILE)) as handle:
        for _title, markup, _page_id in extract_pages(handle):
            text = _WIKI_HEADING.sub("\n\n", filter_wiki(markup))
            for block in _BLANK_LINES.split(text):
                paragraph = " ".join(_WIKI_QUOTES.sub("", block).split())
                if len(paragraph.split()) >= min_words:
                    paragraphs.append(paragraph)
    return paragraphs


@functools.cache
def _embedded() -> tuple[str, ...]:
    return tuple(news_texts() + wiki_paragraphs())


def embedded_texts() -> list[str]:
    """Every embedded text, news then Wikipedia; parsed once per process (about 2 s)."""
    return list(_embedded())


def read_jsonl(path: Path, text_field: str = "text") -> list[str]:
    """The ``text_field`` of every record of a JSON-lines file, in file order; blank lines
    skipped, empty texts kept. ValueError names the file and line of a bad record."""
    texts = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not valid JSON: {exc}") from exc
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise ValueError(
                    f"{path}, line {number}: expected a JSON object with a string "
                    f"{text_field!r} field"
                )
            texts.append(record[text_field])
    return texts


def read_txt(path: Path) -> list[str]:
    """The texts of a plain-text file whose documents are separated by blank lines."""
    content = path.read_text(encoding="utf-8")
    return [t.strip() for t in _BLANK_LINES.split(content) if t.strip()]


def load_texts(source: str, n_texts: int) -> list[str]:
    """The first ``n_texts`` non-blank texts (stripped) of ``source`` (``"embedded"`` or a
    .jsonl / .txt path); fewer when it has fewer (logged, not an error). FileNotFoundError and
    the ValueError of a bad ``source`` name the config key."""
    if n_texts < 1:
        raise ValueError(f"n_texts must be >= 1, got {n_texts}")
    if source == "embedded":
        texts = embedded_texts()
    else:
        path = Path(source)
        if path.suffix not in (".jsonl", ".txt"):
            raise ValueError(
                f"config key {SOURCE_KEY} = {source!r}: must be 'embedded' or a path ending in "
                ".jsonl or .txt"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"config key {SOURCE_KEY} = {source!r}: no such file "
                f"(relative paths are relative to the working directory {Path.cwd()})"
            )
        if path.suffix == ".jsonl":
            texts = [text.strip() for text in read_jsonl(path) if text.strip()]
        else:
            texts = read_txt(path)
    if len(texts) < n_texts:
        logger.warning(
            "%s = %r holds %d texts, fewer than the %d asked for: using all of them",
            SOURCE_KEY,
            source,
            len(texts),
            n_texts,
        )
    else:
        logger.info("using the first %d of %d texts from %s", n_texts, len(texts), source)
    return texts[:n_texts]
