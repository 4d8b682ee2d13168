"""Where the GPT-2 track's texts come from: dataset specs, downloads and raw documents.

A dataset spec is the dict under the config key ``gpt2.datasets.<name>`` (its keys:
schemas/config.schema.yaml). Sources: ``hub`` (``datasets.load_dataset(name, subset,
revision=commit, data_files=...)``; ``name`` may also be a local directory or ``"parquet"`` /
``"json"`` with ``data_files``, how the tests run offline), ``url`` (``webtext``: one JSON-lines
file per split with a ``"text"`` field, GPT-2 output-dataset ``webtext.{train,valid,test}.jsonl``;
``writingprompts``: ``writingPrompts.tar.gz`` holding ``writingPrompts/{train,valid,test}``
``.wp_source`` / ``.wp_target``, line *i* of the source the prompt of line *i* of the target,
read straight from the tarball), ``local`` (JSON lines, or plain text with one document per
blank-line-separated block) and ``embedded`` (:mod:`mixce.embedded`).

:func:`fetch` (hub / url) downloads into ``dest_dir`` (``resources/datasets/<dataset>/``), a hub
dataset's splits as ``<split>.jsonl`` (``validation``/``valid`` renamed ``dev``), and writes
``manifest.json`` last and atomically (files, sizes, sha256, urls, hub commit, spec).

Pins and records. A url file is pinned by ``sha256`` and ``size``, a hub dataset by
``revision`` (:data:`PIN_KEYS`). The first download records what it got in ``record.json``,
which stays (unlike the manifest, which Snakemake deletes before it reruns the download
rule). From then on a file is never fetched again: one on disk is checked against its pin or
record (size, then sha256) and kept (one with neither is adopted and recorded: files are only
ever put in place whole); a missing one is downloaded again and must match them (a hub
dataset is loaded again at the recorded commit). A file that differs, and a pin that
disagrees with the record, stop with ChangedFileError or DownloadError naming the file and
both values, unless ``refresh=True``, which downloads everything again (checked against the
pins only) and records it anew. :func:`read_raw` checks every file against the manifest.

:func:`read_raw` returns raw documents per official split (``train``, ``dev``, ``test``) for
hub / url sources, one split ``all`` for local / embedded ones. A WikiText document is a
non-empty line not starting with ``=``; WebText and WritingPrompts give one document per
record, WritingPrompts ``"{prompt} {story}"`` (cleaned later by :mod:`.prepare`).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mixce import embedded
from mixce.gpt2.data.clean import CLEANERS, clean_wikitext_line
from mixce.gpt2.data.download import (
    ChangedFileError,
    DownloadError,
    check_file,
    download,
    hub_commit,
    sha256_file,
)
from mixce.gpt2.data.prepare import write_jsonl
from mixce.io import read_json, write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RECORD = "record.json"
# Spec keys that say what a download must be without changing it: a pin that agrees with the
# record changes no file (the workflow keeps them out of its rules' params).
PIN_KEYS = ("sha256", "size", "revision")
REFRESH_HINT = (
    "to accept the new one, download again with refresh (snakemake --config "
    "'refresh_downloads=[<name>]' --forcerun <its manifest.json>; docs/CONFIG.md)"
)
OFFICIAL_SPLITS = ("train", "dev", "test")
# the formats each source allows (the schema allows every format for every source)
FORMATS = {"hub": tuple(CLEANERS), "url": ("webtext", "writingprompts"), "local": ("jsonl", "txt")}
EMBEDDED_CORPORA = {
    "news": embedded.news_texts,
    "enwiki": embedded.wiki_paragraphs,
    "all": embedded.embedded_texts,
}
# official split names -> ours
SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
WP_SPLITS = {"train": "train", "valid": "dev", "test": "test"}


# --------------------------------------------------------------------------- specs


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise ValueError for what the config schema, which checks each key on its own, lets
    through: a format, url keys or a pin that does not fit the source."""
    source, fmt = spec["source"], spec.get("format", "plain")
    if source in FORMATS and fmt not in FORMATS[source]:
        raise ValueError(f"{source} dataset spec: format must be one of {FORMATS[source]}")
    misplaced = {"hub": ["sha256", "size"], "url": ["revision"]}.get(source, [])
    if any(spec.get(key) for key in misplaced):
        raise ValueError(f"{source} dataset spec: {misplaced} are not pins of a {source} source")
    if source == "url":
        urls = set(spec["urls"])
        wanted = {"archive"} if fmt == "writingprompts" else set(OFFICIAL_SPLITS)
        if urls != wanted:
            raise ValueError(f"url dataset spec ({fmt}): urls must have the keys {sorted(wanted)}")
        extra = (set(spec.get("sha256") or {}) | set(spec.get("size") or {})) - urls
        if extra:
            raise ValueError(f"url dataset spec: sha256 / size have keys not in urls: {extra}")


def needs_download(spec: Mapping[str, Any]) -> bool:
    return spec["source"] in ("hub", "url")


def content_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without its pins (:data:`PIN_KEYS`): what to download, not how to check it."""
    return {key: value for key, value in spec.items() if key not in PIN_KEYS}


def pins_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The pins (:data:`PIN_KEYS`) a spec sets (absent and null ones left out)."""
    return {key: spec[key] for key in PIN_KEYS if spec.get(key) is not None}


def format_of(spec: Mapping[str, Any]) -> str:
    """The text format that decides the cleaner (a key of :data:`.clean.CLEANERS`)."""
    return "embedded" if spec["source"] == "embedded" else str(spec.get("format", "plain"))


# --------------------------------------------------------------------------- fetch


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_record(dest: Path, record: dict[str, Any]) -> None:
    write_json(dest / RECORD, {**record, "updated_at": _now()})


def _recorded(dest: Path) -> str:
    return f"recorded at the first download in {dest / RECORD}"


def _hub_identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {key: spec.get(key) for key in ("name", "subset", "data_files", "text_field")}


def check_pins(spec: Mapping[str, Any], dest_dir: str | Path) -> dict[str, Any] | None:
    """Raise ChangedFileError when a spec's pins, its source or a hub spec's dataset differ
    from ``dest_dir/record.json``; return that record (None: none, so nothing to compare).
    Cheap (it reads the record only), so the workflow runs it when it starts."""
    dest = Path(dest_dir)
    if not (dest / RECORD).is_file():
        return None
    record = read_json(dest / RECORD)

    def changed(what: Path, expected: str, found: str) -> ChangedFileError:
        return ChangedFileError(what, expected, f"{found} ({_recorded(dest)})", REFRESH_HINT)

    source = spec["source"]
    if record.get("source") != source:
        raise changed(dest, f"a {source} source (the config)", f"a {record.get('source')} source")
    if source == "url":
        for kind, show in (("sha256", "sha256 {}"), ("size", "{} bytes")):
            for key, pin in (spec.get(kind) or {}).items():
                entry = record.get("files", {}).get(key)
                pinned = pin.lower() if isinstance(pin, str) else pin
                if pin is not None and entry is not None and pinned != entry[kind]:
                    expected = f"{show.format(pinned)} (pinned in the config)"
                    raise changed(dest / entry["file"], expected, show.format(entry[kind]))
        return record
    hub = record.get("hub", {})
    for key, value in _hub_identity(spec).items():
        if hub.get(key) != value:
            raise changed(dest, f"hub {key} {value!r} (the config)", repr(hub.get(key)))
    pin = spec.get("revision")
    if pin is not None and pin not in (hub.get("revision"), hub.get("commit")):
        expected = f"hub revision {pin} (pinned in the config)"
        raise changed(dest, expected, f"commit {hub.get('commit')}")
    return record


def _fetch_url(
    spec: Mapping[str, Any], dest_dir: Path, record: dict[str, Any] | None, refresh: bool
) -> dict[str, Any]:
    recorded = (record or {}).get("files", {})
    created = (record or {}).get("created_at", _now())
    new_record: dict[str, Any] = {"source": "url", "files": {}, "created_at": created}
    taken: set[str] = set()
    for key, url in spec["urls"].items():
        entry = recorded.get(key) or {}
        name = entry["file"] if entry else Path(urlparse(url).path).name
        clash = name in taken or name in (MANIFEST, RECORD) or name.startswith(".")
        if not entry and (not name or clash):
            name = f"{key}.download"
        taken.add(name)
        path = dest_dir / name
        pin_sha = ((spec.get("sha256") or {}).get(key) or "").lower() or None
        pin_size = (spec.get("size") or {}).get(key)
        pinned = pin_sha is not None or pin_size is not None
        want_sha = pin_sha or entry.get("sha256")
        want_size = pin_size if pin_size is not None else entry.get("size")
        origin = "pinned in the config" if pinned else _recorded(dest_dir)
        source_url = url
        if path.exists() and not refresh:
            check_file(path, want_sha, want_size, REFRESH_HINT, origin)
            if entry and entry.get("url") != url:
                source_url = entry["url"]
                logger.warning(
                    "%s: the config now names %s; kept the file downloaded from %s (as "
                    "recorded; refresh downloads it from the new URL)",
                    path,
                    url,
                    source_url,
                )
            logger.info("%s: already downloaded, kept (not fetched again)", path)
        else:
            try:
                download(url, path, sha256=want_sha, size=want_size, refresh=refresh)
            except DownloadError as error:
                if "mismatch" not in error.reason or not (pinned or entry):
                    raise
                reason = f"{error.reason} (expected: {origin}); {REFRESH_HINT}"
                raise DownloadError(url, path, reason) from error
        new_record["files"][key] = {
            "file": name,
            "size": path.stat().st_size,
            "sha256": want_sha or sha256_file(path),  # checked above when known
            "url": source_url,
        }
        _write_record(dest_dir, new_record)  # after each file, so a later failure keeps it
    return new_record["files"]


def _fetch_hub(
    spec: Mapping[str, Any],
    dest_dir: Path,
    record: dict[str, Any] | None,
    cache_dir: str | Path | None,
    endpoint: str | None,
) -> dict[str, Any]:
    recorded = (record or {}).get("files", {})
    hub_rec = (record or {}).get("hub")
    origin = _recorded(dest_dir)
    present = {}
    for key, entry in recorded.items():
        path = dest_dir / entry["file"]
        if path.exists():
            check_file(path, entry["sha256"], entry["size"], REFRESH_HINT, origin)
            present[key] = entry
    if recorded and len(present) == len(recorded):
        commit = (hub_rec or {}).get("commit")
        logger.info("%s: every file as recorded (commit %s), not fetched again", dest_dir, commit)
        return {"files": dict(recorded), "hub": hub_rec}

    import datasets
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    # exactly the recorded commit, else the pinned (or default) revision resolved to a commit
    revision = (hub_rec or {}).get("commit") or spec.get("revision")
    commit = None
    name = spec["name"]
    if not Path(name).exists() and name not in _PACKAGED_DATASETS_MODULES:  # a hub repository
        commit = hub_commit("dataset", name, revision, endpoint)
    kwargs = {
        "data_files": spec.get("data_files"),
        "revision": commit or revision,
        "cache_dir": None if cache_dir is None else str(Path(cache_dir)),
    }
    kwargs = {key: value for key, value in kwargs.items() if value}
    field = spec.get("text_field", "text")
    logger.info("datasets.load_dataset(%r, %r, %s)", name, spec.get("subset"), kwargs)
    loaded = datasets.load_dataset(name, spec.get("subset"), **kwargs)
    files: dict[str, Any] = {}
    for split, part in loaded.items():
        ours = SPLIT_NAMES.get(split, split)
        if ours in files:
            raise ValueError(f"hub dataset {name!r}: two splits map to {ours!r}")
        if ours in present:
            files[ours] = present[ours]
            continue
        if field not in part.column_names:
            raise ValueError(
                f"hub dataset {name!r} split {split!r}: no column {field!r} "
                f"(columns: {part.column_names})"
            )
        path, new = dest_dir / f"{ours}.jsonl", dest_dir / f".{ours}.jsonl.new"
        batches = part.select_columns([field]).iter(batch_size=10_000)
        write_jsonl(new, (text for batch in batches for text in batch[field]))
        if ours in recorded:  # written again after it went missing: must be the same bytes
            try:
                check_file(new, recorded[ours]["sha256"], recorded[ours]["size"], "", origin)
            except ChangedFileError as error:
                new.unlink(missing_ok=True)
                raise ChangedFileError(path, error.expected, error.got, REFRESH_HINT) from None
        new.replace(path)
        files[ours] = {
            "file": path.name,
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
            "split": split,
            "rows": part.num_rows,
        }
        logger.info("wrote %s: %d rows of split %r", path, part.num_rows, split)
    hub = hub_rec or {
        **_hub_identity(spec),
        "revision": spec.get("revision"),
        "commit": commit,
        "datasets_version": datasets.__version__,
    }
    created = (record or {}).get("created_at", _now())
    _write_record(dest_dir, {"source": "hub", "hub": hub, "files": files, "created_at": created})
    return {"files": files, "hub": hub}


def fetch(
    spec: Mapping[str, Any],
    dest_dir: str | Path,
    *,
    refresh: bool = False,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Download a hub / url dataset into ``dest_dir`` (module docstring); write and return its
    manifest. ``cache_dir``: ``datasets.load_dataset``'s; ``endpoint``: the hub's. Raises
    ValueError (a bad or local / embedded spec), ChangedFileError, DownloadError."""
    validate_spec(spec)
    if not needs_download(spec):
        raise ValueError(f"{spec['source']} dataset spec: nothing to download")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    # an old manifest must not vouch for files that are about to be checked or replaced
    (dest / MANIFEST).unlink(missing_ok=True)
    if refresh:
        logger.info("%s: refresh asked: downloading everything again", dest)
    record = None if refresh else check_pins(spec, dest)
    if spec["source"] == "url":
        got: dict[str, Any] = {"files": _fetch_url(spec, dest, record, refresh)}
    else:
        got = _fetch_hub(spec, dest, record, cache_dir, endpoint)
    manifest = {"source": spec["source"], "format": format_of(spec), **got, "spec": dict(spec)}
    manifest["fetched_at"] = _now()
    write_json(dest / MANIFEST, manifest)
    logger.info("wrote %s (%d files)", dest / MANIFEST, len(manifest["files"]))
    return manifest


# --------------------------------------------------------------------------- readers


def _read_writingprompts(archive: Path) -> dict[str, list[str]]:
    names = {f"{stem}.{kind}" for stem in WP_SPLITS for kind in ("wp_source", "wp_target")}
    found: dict[str, list[str]] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            base = Path(member.name).name
            if not member.isfile() or base not in names:
                continue
            if base in found:
                raise ValueError(f"{archive}: more than one member named {base}")
            binary = tar.extractfile(member)
            assert binary is not None
            # streamed line by line; only "\n" ends a line (no universal newlines, so the
            # source and target line numbers stay aligned)
            with io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n") as text:
                found[base] = [line.rstrip("\n") for line in text]
    missing = sorted(names - set(found))
    if missing:
        raise ValueError(f"{archive}: no member(s) {', '.join(missing)} in the archive")
    raw: dict[str, list[str]] = {}
    for stem, split in WP_SPLITS.items():
        prompts, stories = found[f"{stem}.wp_source"], found[f"{stem}.wp_target"]
        if len(prompts) != len(stories):
            raise ValueError(
                f"{archive}: {split} has {len(prompts)} prompts but {len(stories)} stories"
            )
        raw[split] = [f"{p.strip()} {s.strip()}" for p, s in zip(prompts, stories, strict=True)]
    return raw


def _manifest_files(manifest_dir: Path) -> dict[str, Path]:
    """The files a manifest lists, each checked against its size and sha256."""
    path = manifest_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no manifest {path}: run the download step first")
    files: dict[str, Path] = {}
    for key, entry in read_json(path)["files"].items():
        file = manifest_dir / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{path} lists {file}, which is missing")
        check_file(file, entry.get("sha256"), entry["size"], REFRESH_HINT, f"as {path} says")
        files[key] = file
    return files


def read_raw(spec: Mapping[str, Any], manifest_dir: str | Path | None) -> dict[str, list[str]]:
    """Raw documents per official split (hub / url; ``manifest_dir``: where :func:`fetch` wrote)
    or in one split ``"all"`` (local / embedded)."""
    validate_spec(spec)
    source = spec["source"]
    if source == "local":
        path = Path(spec["path"])
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path} (working directory {Path.cwd()})")
        if spec["format"] == "jsonl":
            texts = embedded.read_jsonl(path, spec.get("text_field", "text"))
        else:
            texts = embedded.read_txt(path)
        logger.info("read %d documents from %s", len(texts), path)
        return {"all": texts}
    if source == "embedded":
        texts = EMBEDDED_CORPORA[spec["corpus"]]()
        logger.info("read %d documents from the embedded %s corpus", len(texts), spec["corpus"])
        return {"all": texts}

    if manifest_dir is None:
        raise ValueError(f"{source} dataset spec: read_raw needs the download directory")
    files = _manifest_files(Path(manifest_dir))
    fmt = format_of(spec)
    if fmt == "writingprompts":
        raw = _read_writingprompts(files["archive"])
    else:
        field = "text" if source == "hub" else spec.get("text_field", "text")
        raw = {}
        for split in OFFICIAL_SPLITS:
            if split not in files:
                logger.warning("%s has no %s split", manifest_dir, split)
            texts = embedded.read_jsonl(files[split], field) if split in files else []
            if fmt == "wikitext":
                docs = [line for line in texts if clean_wikitext_line(line) is not None]
                logger.info(
                    "wikitext %s: %d of %d lines are documents", split, len(docs), len(texts)
                )
                texts = docs
            raw[split] = texts
    for split, docs in raw.items():
        logger.info("%s: %d raw %s documents", manifest_dir, len(docs), split)
    return raw
