"""Verified, atomic HTTP(S) downloads with the standard library (``urllib``).

Rules of :func:`download`:

- The body is streamed into a temporary file in the destination's own directory (named
  ``.<dest name>.<random>.part``) while a tqdm bar reports progress on stderr (inside a job,
  :func:`mixce.io.job_logging` turns it into a few log lines).
- Only after the whole body arrived is it checked: the byte count must equal the
  ``Content-Length`` header when the server sent one (a shorter body is a *truncated*
  download), must equal ``size`` when given, and its SHA-256 must equal ``sha256`` when given.
  Then, and only then, the temporary file is moved onto ``dest`` with ``os.replace``.
- On any failure the temporary file is removed and ``dest`` is neither created nor changed (a
  file that was there before is left as it was); :class:`DownloadError` is raised with the
  URL, the destination and the reason. ``KeyboardInterrupt`` (and other ``BaseException``\\ s)
  clean up the same way and then propagate unchanged, so Ctrl-C still stops the program.
- Transient failures are retried ``retries`` times with an exponential back-off: connection
  errors and time-outs, HTTP 5xx / 408 / 429, and truncated bodies. HTTP 4xx (404 ...), size
  and checksum mismatches and local file-system errors fail at once.
- Cache: when ``dest`` already exists and a ``sha256`` and/or ``size`` is given that it
  matches, nothing is downloaded. Without either there is nothing to check an existing file
  against, so it is downloaded again (and replaced only when that succeeds).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

__all__ = ["DownloadError", "download", "sha256_file"]

logger = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per read
USER_AGENT = "mixce-workflow/0.1 (urllib)"


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, the destination and the reason."""

    def __init__(self, url: str, dest: Path | str, reason: str) -> None:
        super().__init__(f"download of {url} to {dest} failed: {reason}")
        self.url = url
        self.dest = Path(dest)
        self.reason = reason


class _Failure(Exception):
    """One failed attempt; ``transient`` says whether another attempt may succeed."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(path: Path, sha256: str | None, size: int | None) -> bool:
    """Whether an existing file has the given size and checksum (each only when given)."""
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(path) == sha256.lower()


def _attempt(
    url: str, dest: Path, sha256: str | None, size: int | None, timeout: float
) -> tuple[int, str]:
    """Download once into a temporary file and move it onto ``dest``; (bytes, sha256)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as exc:
                transient = exc.code >= 500 or exc.code in (408, 429)
                raise _Failure(f"HTTP {exc.code} {exc.reason}", transient) from exc
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise _Failure(f"connection error: {reason}", True) from exc
            with response:
                header = response.headers.get("Content-Length")
                expected = int(header) if header and header.strip().isdigit() else None
                bar = tqdm(
                    total=expected,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    file=sys.stderr,
                    mininterval=1.0,
                )
                with bar:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except (http.client.HTTPException, OSError) as exc:
                            raise _Failure(
                                f"connection error after {received} bytes: {exc!r}", True
                            ) from exc
                        if not block:
                            break
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            raise _Failure(f"truncated: got {received} of {expected} bytes", True)
        if size is not None and received != size:
            raise _Failure(f"size mismatch: expected {size} bytes, got {received}", False)
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise _Failure(f"sha256 mismatch: expected {sha256.lower()}, got {got}", False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; downloads are shared
        os.replace(tmp, dest)
        return received, got
    except _Failure:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:  # local file system (disk full, permissions ...)
        tmp.unlink(missing_ok=True)
        raise _Failure(f"local file error: {exc}", False) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` (see the module docstring for the rules).

    Args:
        url: an http(s) URL.
        dest: the file to create; its directory is created when missing.
        sha256: expected hex SHA-256 of the body, or None to skip the check.
        size: expected number of bytes, or None to skip the check.
        timeout: seconds for connecting and for each read.
        retries: extra attempts after a transient failure.
        backoff: seconds before the first retry; doubled for each further one.

    Raises:
        DownloadError: the download failed; ``dest`` is unchanged and no temporary file is left.
    """
    dest = Path(dest)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is not None or size is not None):
        if _matches(dest, sha256, size):
            logger.info("cache hit: %s already has the expected size/sha256, not downloading", dest)
            return dest
        logger.warning("%s exists but does not match the expected size/sha256: downloading", dest)
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        logger.info("downloading %s -> %s (attempt %d of %d)", url, dest, attempt, attempts)
        try:
            received, got = _attempt(url, dest, sha256, size, timeout)
        except _Failure as failure:
            if failure.transient and attempt < attempts:
                delay = backoff * 2 ** (attempt - 1)
                logger.warning("%s: %s; retrying in %.1f s", url, failure.reason, delay)
                time.sleep(delay)
                continue
            reason = failure.reason
            if attempt > 1:
                reason += f" (after {attempt} attempts)"
            raise DownloadError(url, dest, reason) from failure
        logger.info("downloaded %s: %d bytes, sha256 %s", dest, received, got)
        return dest
    raise AssertionError("unreachable")  # pragma: no cover
