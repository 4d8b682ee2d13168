"""Where the GPT-2 track's texts come from: dataset specs, downloads and raw documents.

A dataset spec is the dict under the config key ``gpt2.datasets.<name>``. Four sources:

``hub``
    ``{"source": "hub", "name": "Salesforce/wikitext", "subset": "wikitext-103-raw-v1",
    "format": "wikitext"}``; optional ``revision``, ``data_files`` and ``text_field``
    (default ``"text"``). :func:`fetch` calls ``datasets.load_dataset(name, subset, ...)`` and
    writes every split to ``<split>.jsonl`` (one ``{"text": ...}`` per line), the splits
    renamed ``validation``/``valid`` -> ``dev`` (``train`` and ``test`` kept). ``name`` may be
    anything ``load_dataset`` reads, e.g. a local directory, or ``"parquet"`` / ``"json"``
    with ``data_files`` (that is how the tests run it offline).
``url``
    ``{"source": "url", "urls": {"train": URL, "dev": URL, "test": URL} | {"archive": URL},
    "sha256": {key: hex | null} (optional), "size": {key: int | null} (optional),
    "format": "webtext" | "writingprompts"}``. ``webtext``: one JSON-lines file per split with a
    ``"text"`` field (GPT-2 output-dataset ``webtext.{train,valid,test}.jsonl``).
    ``writingprompts``: one ``.tar.gz`` (``writingPrompts.tar.gz``) holding
    ``writingPrompts/{train,valid,test}.wp_source`` and ``.wp_target``; line *i* of the source
    is the prompt of line *i* of the target. It is read straight from the tarball.
``local``
    ``{"source": "local", "path": "...", "format": "jsonl" | "txt", "text_field": "text"}``:
    JSON lines with a text field, or plain text with one document per blank-line-separated
    block. Relative paths are relative to the working directory.
``embedded``
    ``{"source": "embedded", "corpus": "news" | "enwiki" | "all"}``: the gensim corpora of
    :mod:`mixce.data.embedded`.

:func:`fetch` (hub / url only) downloads into ``dest_dir`` (``resources/<dataset>/``) and
writes ``dest_dir/manifest.json`` last and atomically (files, sizes, sha256, urls, the spec).
:func:`read_raw` returns raw documents per official split (``train``, ``dev``, ``test``) for
hub / url sources, and one split ``all`` for local / embedded ones. For WikiText a document is
a non-empty line that does not start with ``=``; heading and blank lines are skipped (and
counted in the log); WebText and WritingPrompts give one document per record; WritingPrompts
documents are ``"{prompt} {story}"`` (raw, cleaned later by :mod:`mixce.data.prepare`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mixce.data.clean import CLEANERS, clean_wikitext_line
from mixce.data.download import download, sha256_file
from mixce.io import atomic_output, read_json, write_json

__all__ = [
    "MANIFEST",
    "SOURCES",
    "fetch",
    "format_of",
    "needs_download",
    "read_jsonl_texts",
    "read_raw",
    "read_txt_texts",
    "validate_spec",
]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SOURCES = ("hub", "url", "local", "embedded")
OFFICIAL_SPLITS = ("train", "dev", "test")
URL_FORMATS = ("webtext", "writingprompts")
LOCAL_FORMATS = ("jsonl", "txt")
EMBEDDED_CORPORA = ("news", "enwiki", "all")
# official split names -> ours
SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
WP_SPLITS = {"train": "train", "valid": "dev", "test": "test"}


# --------------------------------------------------------------------------- specs


def _source(spec: Mapping[str, Any]) -> str:
    source = spec.get("source")
    if source not in SOURCES:
        raise ValueError(f"dataset spec {dict(spec)!r}: source must be one of {SOURCES}")
    return str(source)


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise ValueError naming what is wrong with a dataset spec."""
    source = _source(spec)

    def need(key: str) -> Any:
        if spec.get(key) in (None, ""):
            raise ValueError(f"{source} dataset spec {dict(spec)!r}: missing {key!r}")
        return spec[key]

    if source == "hub":
        need("name")
        fmt = spec.get("format", "plain")
        if fmt not in CLEANERS:
            raise ValueError(f"hub dataset spec: unknown format {fmt!r}")
    elif source == "url":
        fmt = need("format")
        urls = need("urls")
        if fmt not in URL_FORMATS:
            raise ValueError(f"url dataset spec: format must be one of {URL_FORMATS}, got {fmt!r}")
        if not isinstance(urls, Mapping):
            raise ValueError(f"url dataset spec: urls must be a mapping, got {urls!r}")
        wanted = {"archive"} if fmt == "writingprompts" else set(OFFICIAL_SPLITS)
        if set(urls) != wanted:
            raise ValueError(
                f"url dataset spec ({fmt}): urls must have the keys {sorted(wanted)}, "
                f"got {sorted(urls)}"
            )
        for key in ("sha256", "size"):
            extra = set(spec.get(key) or {}) - set(urls)
            if extra:
                raise ValueError(f"url dataset spec: {key} has keys not in urls: {sorted(extra)}")
    elif source == "local":
        need("path")
        fmt = need("format")
        if fmt not in LOCAL_FORMATS:
            raise ValueError(f"local dataset spec: format must be one of {LOCAL_FORMATS}")
    else:
        corpus = need("corpus")
        if corpus not in EMBEDDED_CORPORA:
            raise ValueError(f"embedded dataset spec: corpus must be one of {EMBEDDED_CORPORA}")


def needs_download(spec: Mapping[str, Any]) -> bool:
    """Whether the spec's data must be fetched first (hub and url sources)."""
    return _source(spec) in ("hub", "url")


def format_of(spec: Mapping[str, Any]) -> str:
    """The text format that decides the cleaner (a key of :data:`mixce.data.clean.CLEANERS`)."""
    source = _source(spec)
    if source == "embedded":
        return "embedded"
    return str(spec.get("format", "plain"))


# --------------------------------------------------------------------------- fetch


def _file_name(key: str, url: str, taken: set[str]) -> str:
    name = Path(urlparse(url).path).name
    if not name or name in taken or name == MANIFEST or name.startswith("."):
        name = f"{key}.download"
    return name


def _file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def _fetch_url(spec: Mapping[str, Any], dest_dir: Path) -> dict[str, Any]:
    sha = spec.get("sha256") or {}
    sizes = spec.get("size") or {}
    files: dict[str, Any] = {}
    taken: set[str] = set()
    for key, url in spec["urls"].items():
        name = _file_name(key, url, taken)
        taken.add(name)
        path = download(url, dest_dir / name, sha256=sha.get(key), size=sizes.get(key))
        files[key] = {**_file_entry(path), "url": url}
    return files


def _fetch_hub(spec: Mapping[str, Any], dest_dir: Path, cache_dir: Path | None) -> dict[str, Any]:
    import datasets

    kwargs: dict[str, Any] = {}
    if spec.get("data_files"):
        kwargs["data_files"] = spec["data_files"]
    if spec.get("revision"):
        kwargs["revision"] = spec["revision"]
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    field = spec.get("text_field", "text")
    logger.info("datasets.load_dataset(%r, %r, %s)", spec["name"], spec.get("subset"), kwargs)
    loaded = datasets.load_dataset(spec["name"], spec.get("subset"), **kwargs)
    files: dict[str, Any] = {}
    for split, part in loaded.items():
        ours = SPLIT_NAMES.get(split, split)
        if ours in files:
            raise ValueError(f"hub dataset {spec['name']!r}: two splits map to {ours!r}")
        if field not in part.column_names:
            raise ValueError(
                f"hub dataset {spec['name']!r} split {split!r}: no column {field!r} "
                f"(columns: {part.column_names})"
            )
        path = dest_dir / f"{ours}.jsonl"
        with atomic_output(path) as handle:
            for batch in part.select_columns([field]).iter(batch_size=10_000):
                for text in batch[field]:
                    handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        files[ours] = {**_file_entry(path), "split": split, "rows": part.num_rows}
        logger.info("wrote %s: %d rows of split %r", path, part.num_rows, split)
    return {
        "files": files,
        "hub": {
            "name": spec["name"],
            "subset": spec.get("subset"),
            "revision": spec.get("revision"),
            "datasets_version": datasets.__version__,
        },
    }


def fetch(
    spec: Mapping[str, Any], dest_dir: str | Path, *, cache_dir: str | Path | None = None
) -> dict[str, Any]:
    """Download a hub / url dataset into ``dest_dir``; write and return its manifest.

    ``dest_dir/manifest.json`` is written last and atomically, so its presence means every
    file it lists is complete. ``cache_dir`` is passed to ``datasets.load_dataset`` (hub only;
    None uses the Hugging Face default cache).

    Raises:
        ValueError: the spec is invalid, or is a local / embedded one (nothing to download).
        mixce.data.download.DownloadError: a url download failed.
    """
    validate_spec(spec)
    if not needs_download(spec):
        raise ValueError(f"{spec['source']} dataset spec: nothing to download")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    # an old manifest must not vouch for files that are about to be replaced
    (dest / MANIFEST).unlink(missing_ok=True)
    if spec["source"] == "url":
        manifest: dict[str, Any] = {"files": _fetch_url(spec, dest)}
    else:
        manifest = _fetch_hub(spec, dest, None if cache_dir is None else Path(cache_dir))
    manifest = {
        "source": spec["source"],
        "format": format_of(spec),
        **manifest,
        "spec": dict(spec),
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(dest / MANIFEST, manifest)
    logger.info("wrote %s (%d files)", dest / MANIFEST, len(manifest["files"]))
    return manifest


# --------------------------------------------------------------------------- readers


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not valid JSON: {exc}") from exc


def read_jsonl_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """The ``text_field`` of every record of a JSON-lines file, in file order.

    Blank lines are skipped; empty texts are kept (they are counted as empty later).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object with a string ``text_field``, naming the
            file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path} (working directory {Path.cwd()})")
    texts = []
    for number, record in _jsonl_records(path):
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise ValueError(
                f"{path}, line {number}: expected a JSON object with a string {text_field!r} field"
            )
        texts.append(record[text_field])
    return texts


def read_txt_texts(path: str | Path) -> list[str]:
    """The blank-line-separated blocks of a text file (ends stripped, empty blocks skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path} (working directory {Path.cwd()})")
    blocks: list[str] = []
    current: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                current.append(line)
            elif current:
                blocks.append("".join(current).strip())
                current = []
    if current:
        blocks.append("".join(current).strip())
    return blocks


def _wikitext_documents(lines: list[str], split: str) -> list[str]:
    docs = [line for line in lines if clean_wikitext_line(line) is not None]
    logger.info(
        "wikitext %s: %d lines, %d documents (blank and '=' heading lines skipped)",
        split,
        len(lines),
        len(docs),
    )
    return docs


def _read_writingprompts(archive: Path) -> dict[str, list[str]]:
    wanted = {
        f"{stem}.{kind}": (split, kind)
        for stem, split in WP_SPLITS.items()
        for kind in ("wp_source", "wp_target")
    }
    found: dict[tuple[str, str], list[str]] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            base = Path(member.name).name
            if not member.isfile() or base not in wanted:
                continue
            if wanted[base] in found:
                raise ValueError(f"{archive}: more than one member named {base}")
            binary = tar.extractfile(member)
            assert binary is not None
            # streamed line by line; only "\n" ends a line (no universal newlines, so the
            # source and target line numbers stay aligned)
            with io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n") as text:
                found[wanted[base]] = [line.rstrip("\n") for line in text]
    missing = sorted(name for name, key in wanted.items() if key not in found)
    if missing:
        raise ValueError(f"{archive}: no member(s) {', '.join(missing)} in the archive")
    raw: dict[str, list[str]] = {}
    for split in WP_SPLITS.values():
        prompts, stories = found[(split, "wp_source")], found[(split, "wp_target")]
        if len(prompts) != len(stories):
            raise ValueError(
                f"{archive}: {split} has {len(prompts)} prompts but {len(stories)} stories"
            )
        raw[split] = [f"{p.strip()} {s.strip()}" for p, s in zip(prompts, stories, strict=True)]
    return raw


def _manifest_files(manifest_dir: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    path = manifest_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no manifest {path}: run the download step first")
    manifest = read_json(path)
    files: dict[str, Path] = {}
    for key, entry in manifest["files"].items():
        file = manifest_dir / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{path} lists {file}, which is missing")
        if file.stat().st_size != entry["size"]:
            raise ValueError(
                f"{file}: {file.stat().st_size} bytes, but {path} says {entry['size']}"
            )
        files[key] = file
    return manifest, files


def read_raw(spec: Mapping[str, Any], manifest_dir: str | Path | None) -> dict[str, list[str]]:
    """Raw documents per official split (hub / url) or in one split ``"all"`` (local / embedded).

    ``manifest_dir`` is the directory :func:`fetch` wrote (it is ignored for local / embedded
    sources and may be None there).
    """
    validate_spec(spec)
    source = spec["source"]
    if source == "local":
        path = Path(spec["path"])
        if spec["format"] == "jsonl":
            texts = read_jsonl_texts(path, spec.get("text_field", "text"))
        else:
            texts = read_txt_texts(path)
        logger.info("read %d documents from %s", len(texts), path)
        return {"all": texts}
    if source == "embedded":
        from mixce.data import embedded

        corpus = spec["corpus"]
        if corpus == "news":
            texts = embedded.news_texts()
        elif corpus == "enwiki":
            texts = embedded.wiki_paragraphs()
        else:
            texts = embedded.embedded_texts()
        logger.info("read %d documents from the embedded %s corpus", len(texts), corpus)
        return {"all": texts}

    if manifest_dir is None:
        raise ValueError(f"{source} dataset spec: read_raw needs the download directory")
    _manifest, files = _manifest_files(Path(manifest_dir))
    fmt = format_of(spec)
    if fmt == "writingprompts":
        raw = _read_writingprompts(files["archive"])
    else:
        field = "text" if source == "hub" else spec.get("text_field", "text")
        raw = {}
        for split in OFFICIAL_SPLITS:
            if split not in files:
                logger.warning("%s has no %s split", manifest_dir, split)
                raw[split] = []
                continue
            texts = read_jsonl_texts(files[split], field)
            raw[split] = _wikitext_documents(texts, split) if fmt == "wikitext" else texts
    for split, docs in raw.items():
        logger.info("%s: %d raw %s documents", manifest_dir, len(docs), split)
    return raw
