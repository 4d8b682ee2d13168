"""File helpers shared by the workflow scripts.

- Atomic writes: each output is written under a temporary name beside it, then moved into
  place (``os.replace``): an interrupted job never leaves a complete-looking file behind.
- :func:`job_logging`: one job's logging, stdout and stderr (tqdm) into its log file, tqdm's
  carriage-return refreshes turned into at most one line every few seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """A temporary file beside ``path`` (``mode`` "w": UTF-8 text, or "wb"), moved to ``path``
    on success; on any exception it is removed and ``path`` is left untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        kwargs = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as handle:
        handle.write(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN / inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON atomically (numpy scalars/arrays allowed, NaN -> null)."""
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_csv(path: str | os.PathLike[str], df: Any) -> None:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_output(path) as handle:
        df.to_csv(handle, index=False)


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ border-bottom: 2px solid #333; }}
td:first-child, th:first-child {{ text-align: left; }}
</style>
</head>
<body>
<p>{title}: the data of <code>{csv}</code> (4 significant digits; empty: not measured).</p>
{table}
</body>
</html>
"""


def table_html(df: Any, title: str, csv_name: str) -> str:
    """A standalone HTML page showing a table's data (the HTML report can show it; a CSV
    or LaTeX file it can only offer for download)."""
    table = df.to_html(
        index=False, na_rep="", float_format=lambda x: f"{x:.4g}", border=0, escape=True
    )
    return _HTML_PAGE.format(title=title, csv=csv_name, table=table)


def write_table(df: Any, tex: str, stem: str | os.PathLike[str]) -> None:
    """Write a paper table as ``stem.csv`` (no index; missing values empty), ``stem.tex`` and
    ``stem.html`` (:func:`table_html`, for the HTML report), each atomically."""
    stem = Path(stem)
    csv = stem.with_name(stem.name + ".csv")
    write_csv(csv, df)
    write_text(stem.with_name(stem.name + ".tex"), tex)
    title = stem.name.replace("table", "Table ") if stem.name[5:].isdigit() else stem.name
    write_text(stem.with_name(stem.name + ".html"), table_html(df, title, csv.name))


def read_texts(path: str | os.PathLike[str], field: str = "text") -> list[str]:
    """The ``field`` of every line of a jsonl file; a bad line is an error naming file and line."""
    texts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                texts.append(str(json.loads(line)[field]))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(
                    f"{path}, line {number}: no JSON {field!r} field ({error})"
                ) from None
    return texts


def path_list(paths: str | os.PathLike[str] | Any) -> list[str]:
    """A rule's named input or output as a list of paths: Snakemake gives one path as a plain
    string (a job of one seed, the greedy file) and several as a list."""
    if isinstance(paths, str | os.PathLike):
        return [str(paths)]
    return [str(path) for path in paths]


def seed_of_path(path: str | os.PathLike[str]) -> int:
    """The sampling seed of a per-seed file, from its name ``seed<N>.<ext>``: a job that
    writes several seeds' files reads its seeds from its outputs, so that the same file
    has the same params whether one job writes every seed or one job each."""
    stem = Path(path).name.split(".", 1)[0]
    if not (stem.startswith("seed") and stem[4:].isdigit()):
        raise ValueError(f"{path}: not a per-seed file name (seed<N>.<ext>)")
    return int(stem[4:])


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to a compressed ``.npz`` atomically (the name is kept as given)."""
    with atomic_output(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


# --------------------------------------------------------------------------- job logging


class ProgressStream(io.TextIOBase):
    """A log file's text stream that keeps tqdm readable.

    tqdm redraws its bar by writing ``"\\r" + bar`` again and again: in a file, one ever-growing
    line. Here ordinary lines are written as they come, bar states as lines of their own, at
    most one per ``interval`` seconds; the latest state is always written when the bar is
    cleared (``leave=False``), ended by a newline (``leave=True``) or followed by an ordinary
    line, and on close, so the log keeps the final state of every bar."""

    def __init__(
        self,
        target: IO[str],
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._target = target
        self._interval = interval
        self._clock = clock
        self._line = ""  # text not yet ended by \r or \n
        self._in_bar = False  # _line follows a \r: it is a bar state
        self._after_bar = False  # the last thing written was a bar state
        self._pending = ""  # latest bar state not yet written
        self._last = -math.inf  # when a bar state was last written

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def _emit_pending(self) -> None:
        if self._pending:
            self._target.write(self._pending.rstrip() + "\n")
            self._pending = ""

    def _emit_line(self) -> None:
        self._emit_pending()
        self._target.write(self._line + "\n")
        self._line = ""

    def _end_bar_state(self) -> None:
        text, self._line, self._in_bar = self._line, "", False
        if not text:
            return
        self._after_bar = True
        if not text.strip():  # tqdm clears a bar (leave=False) by overwriting it with spaces
            self._emit_pending()
            return
        self._pending = text
        now = self._clock()
        if now - self._last >= self._interval:
            self._emit_pending()
            self._last = now

    def write(self, text: str) -> int:
        # runs of ordinary characters and single "\r" / "\n"
        for piece in filter(None, re.split(r"([\r\n])", text)):
            if piece == "\r":
                self._end_bar_state()
                self._in_bar = True
            elif piece == "\n":
                if self._in_bar:
                    self._end_bar_state()
                    self._emit_pending()
                elif self._line or not self._after_bar:
                    self._emit_line()
                else:  # the newline that ends a bar (tqdm leave=True)
                    self._emit_pending()
                self._after_bar = False
            else:
                self._line += piece
                self._after_bar = self._after_bar and self._in_bar
        # tqdm writes one bar state per call: "\r" + state
        if self._in_bar:
            self._end_bar_state()
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        if not self.closed:  # a write never ends inside a bar state: only _line may be left
            if self._line:
                self._emit_line()
            self._emit_pending()
            self._target.flush()
        super().close()


@contextlib.contextmanager
def job_logging(
    log_path: str | os.PathLike[str] | None,
    level: int = logging.INFO,
    progress_interval: float = 10.0,
) -> Iterator[logging.Logger]:
    """Send this process's logging, stdout and stderr (tqdm) to ``log_path`` (truncated) and
    yield the root logger. An exception inside the block is logged with its traceback and
    re-raised, so a failed job's log says why. ``None``: log to stderr, streams left alone."""
    root, old_level = logging.getLogger(), logging.getLogger().level
    with contextlib.ExitStack() as stack:
        stream: IO[str] = sys.stderr
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(open(log_path, "w", encoding="utf-8", buffering=1))
            stream = ProgressStream(log_file, interval=progress_interval)
            stack.callback(stream.close)
            logging.captureWarnings(True)
            stack.callback(logging.captureWarnings, False)
            stack.callback(setattr, sys, "stderr", sys.stderr)
            stack.callback(setattr, sys, "stdout", sys.stdout)
            sys.stdout = sys.stderr = stream
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
        try:
            yield root
        except BaseException:
            if log_path is not None:
                root.exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
