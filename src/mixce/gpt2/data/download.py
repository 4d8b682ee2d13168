"""Verified, atomic HTTP(S) downloads and hub revisions resolved to commit hashes.

:func:`download` streams the body with pooch's ``HTTPDownloader`` (requests; a tqdm bar on
stderr) into ``.<dest name>.<random>.part`` beside ``dest``, checks the whole body (shorter
than ``Content-Length`` is *truncated*, then ``size`` and ``sha256``) and only then moves it
onto ``dest``. On any failure, ``KeyboardInterrupt`` included, the part file is removed and
``dest`` left as it was. Transient failures are retried with exponential back-off
(connection errors, time-outs, HTTP 5xx / 408 / 429, truncated bodies); 4xx, mismatches and
local file errors fail at once. An existing ``dest`` is never downloaded again: it must match
``sha256`` / ``size`` when given (else ChangedFileError), unless ``refresh=True``.

Not ``pooch.retrieve`` / ``Pooch.fetch`` whole (measured with pooch 1.9.0 against a local
server): they replace an existing file whose hash differs silently ("Updating data"), retry a
404 and a checksum mismatch like network errors, and move a file into place without a size
check. So pooch does the transfer and the hashing, and this module keeps the policy.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pooch
import requests
from tqdm import tqdm

logger = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per read
USER_AGENT = f"mixce-workflow/0.1 (pooch {pooch.__version__})"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_INCOMPLETE = re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)")


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, the destination and the reason."""

    def __init__(self, url: str, dest: Path | str, reason: str) -> None:
        super().__init__(f"download of {url} to {dest} failed: {reason}")
        self.url, self.dest, self.reason = url, Path(dest), reason


class ChangedFileError(RuntimeError):
    """A file (or hub revision) differs from the one pinned in the config or recorded at the
    first download; the message names it, both values and how to accept the new one."""

    def __init__(self, what: Path | str, expected: str, got: str, hint: str = "") -> None:
        message = f"{what} changed: expected {expected}, found {got}"
        super().__init__(message + (f"; {hint}" if hint else ""))
        self.what, self.expected, self.got = str(what), expected, got


class _Failure(Exception):
    """One failed attempt; ``transient`` says whether another attempt may succeed."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason, self.transient = reason, transient


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return str(pooch.file_hash(str(path), alg="sha256"))


def is_commit(revision: str | None) -> bool:
    """Whether ``revision`` is a full 40-hex-digit commit hash (not a branch or tag)."""
    return revision is not None and bool(_COMMIT.match(revision))


def hub_commit(
    repo_type: str, name: str, revision: str | None = None, endpoint: str | None = None
) -> str:
    """The commit hash a hub ``revision`` (None: the default branch) of a ``"model"`` or
    ``"dataset"`` points to now (a commit hash is returned without asking)."""
    if is_commit(revision):
        return str(revision)
    from huggingface_hub import HfApi

    info = getattr(HfApi(endpoint=endpoint), f"{repo_type}_info")(name, revision=revision)
    if not is_commit(info.sha):
        raise ValueError(f"hub {repo_type} {name!r} revision {revision!r}: no commit hash")
    logger.info("hub %s %s: revision %s is commit %s", repo_type, name, revision, info.sha)
    return str(info.sha)


class _Progress:
    """pooch's progress-bar protocol on a tqdm bar: pooch tests the bar's truth value, which a
    tqdm without a total refuses (TypeError) and one with total 0 (no Content-Length) denies."""

    def __init__(self, desc: str) -> None:
        self.bar = tqdm(
            unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr, mininterval=1
        )

    def __bool__(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # update, reset, close
        return getattr(self.bar, name)

    @property
    def total(self) -> int | None:
        return self.bar.total

    @total.setter
    def total(self, value: int) -> None:
        self.bar.total = value or None  # pooch sets 0 when there is no Content-Length


def _truncated(exc: Exception, total: int | None) -> str:
    """The reason for a body cut short (urllib3 says how many bytes came and were missing)."""
    found = _INCOMPLETE.search(str(exc))
    if found:
        got, missing = int(found.group(1)), int(found.group(2))
        return f"truncated: got {got} of {got + missing} bytes"
    return f"truncated (Content-Length {total}): {exc}"


def model_record_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the first fetch of a hub model records its commit: ``<out_dir>.record.json``."""
    out = Path(out_dir)
    return out.with_name(f"{out.name}.record.json")


def check_model_pin(spec: Mapping[str, Any], record_path: str | os.PathLike[str]) -> None:
    """Raise ChangedFileError when a hub model spec's name or ``revision`` pin differs from the
    record of its first fetch. Cheap (reads the record only; none passes), so the workflow
    runs it when it starts."""
    path = Path(record_path)
    if not path.is_file():
        return
    record = json.loads(path.read_text(encoding="utf-8"))
    origin = f"recorded at the first fetch in {path}"
    hint = (
        "to fetch the new one, refresh (snakemake --config 'refresh_downloads=[<model>]' "
        "--forcerun <the model directory>; docs/CONFIG.md)"
    )
    name, pin = spec.get("name"), spec.get("revision")
    if record.get("name") != name:
        expected = f"hub model {name!r} (the config)"
        raise ChangedFileError(path.parent, expected, f"{record.get('name')!r} ({origin})", hint)
    if pin is not None and pin not in (record.get("revision"), record.get("commit")):
        expected, found = f"revision {pin} of {name} (pinned in the config)", record.get("commit")
        raise ChangedFileError(path.parent, expected, f"commit {found} ({origin})", hint)


def check_file(
    path: str | os.PathLike[str], sha256: str | None, size: int | None, hint: str, origin: str = ""
) -> None:
    """Raise ChangedFileError when ``path`` differs from the given size or sha256 (each checked
    only when given), naming both as the same checks (e.g. ``"18 bytes, sha256 ..."``) and
    where the expected ones come from (``origin``)."""
    pairs = [(f"{size} bytes", f"{Path(path).stat().st_size} bytes")] if size is not None else []
    if sha256 is not None:
        pairs.append((f"sha256 {sha256.lower()}", f"sha256 {sha256_file(path)}"))
    if any(want != got for want, got in pairs):
        expected, found = (", ".join(side) for side in zip(*pairs, strict=True))
        origin = f" ({origin})" if origin else ""
        raise ChangedFileError(path, expected + origin, found, hint)


def _attempt(
    url: str, dest: Path, sha256: str | None, size: int | None, timeout: float
) -> tuple[int, str]:
    """Download once into a temporary file and move it onto ``dest``; (bytes, sha256)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        bar = _Progress(dest.name)
        headers = {"User-Agent": USER_AGENT}
        try:
            pooch.HTTPDownloader(
                progressbar=bar, chunk_size=CHUNK, timeout=timeout, headers=headers
            )(url, str(tmp), None)
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            reason = exc.response.reason if exc.response is not None else exc
            raise _Failure(f"HTTP {code} {reason}", code >= 500 or code in (408, 429)) from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _Failure(_truncated(exc, bar.total), True) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Failure(f"connection error: {exc}", True) from exc
        except requests.RequestException as exc:  # invalid URL, too many redirects ...
            raise _Failure(f"request error: {exc}", False) from exc
        finally:
            bar.close()
        received = tmp.stat().st_size
        got = sha256_file(tmp)
        wrong = []
        if size is not None and received != size:
            wrong.append(f"size mismatch: expected {size} bytes, got {received}")
        if sha256 is not None and got != sha256.lower():
            wrong.append(f"sha256 mismatch: expected {sha256.lower()}, got {got}")
        elif wrong:
            wrong.append(f"sha256 {got}")
        if wrong:
            raise _Failure("; ".join(wrong), False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; downloads are shared
        os.replace(tmp, dest)
        return received, got
    except BaseException as exc:  # KeyboardInterrupt too: no part file is left
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # local file system (disk full, permissions ...)
            raise _Failure(f"local file error: {exc}", False) from exc
        raise


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    refresh: bool = False,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` (its directory created) by the rules of the module
    docstring; return ``dest``. ``sha256`` / ``size``: expected (None: not checked);
    ``timeout``: seconds for connecting and each read; ``retries``: extra attempts after a
    transient failure, the first after ``backoff`` seconds, doubled for each further one.
    Raises DownloadError (naming the URL, ``dest`` and the reason) or ChangedFileError."""
    dest = Path(dest)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not refresh:
        check_file(dest, sha256, size, "nothing downloaded; refresh replaces it")
        logger.info("cache hit: %s exists (and matches what is given), not downloading", dest)
        return dest
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        logger.info("downloading %s -> %s (attempt %d of %d)", url, dest, attempt, attempts)
        try:
            received, got = _attempt(url, dest, sha256, size, timeout)
            logger.info("downloaded %s: %d bytes, sha256 %s", dest, received, got)
            return dest
        except _Failure as failure:
            if not failure.transient or attempt == attempts:
                reason = failure.reason + (f" (after {attempt} attempts)" if attempt > 1 else "")
                raise DownloadError(url, dest, reason) from failure
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("%s: %s; retrying in %.1f s", url, failure.reason, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
