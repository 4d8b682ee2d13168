"""GPT-2 track data: downloads (against a real local HTTP server), sources, cleaning, splits.

Nothing here touches the network beyond 127.0.0.1: the HTTP tests run a ThreadingHTTPServer
in a thread, and the hub source is exercised through ``datasets.load_dataset`` on local files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import runpy
import socket
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from mixce.gpt2.data import download as download_module
from mixce.gpt2.data.clean import (
    CLEANERS,
    clean_plain,
    clean_webtext,
    clean_webtext_official,
    clean_wikitext,
    clean_wikitext_line,
    clean_wikitext_official,
    clean_writingprompts,
    clean_writingprompts_official,
    cleaner_for,
    detokenize,
    length_ok,
    moses_detokenize,
    strip_at_marks,
    word_count,
)
from mixce.gpt2.data.download import ChangedFileError, DownloadError, download, sha256_file
from mixce.gpt2.data.prepare import Selection, check_sizes, prepare, read_split, select_splits
from mixce.gpt2.data.sources import fetch, format_of, needs_download, read_raw, validate_spec

ROOT = Path(__file__).resolve().parents[1]
FAST = {"backoff": 0.01, "timeout": 5.0}


# --------------------------------------------------------------------------- helpers


def doc(i: int, n_words: int = 60, tag: str = "doc") -> str:
    """A distinct document of exactly ``n_words`` whitespace words."""
    return " ".join([f"{tag}{i}"] + [f"w{(i * 7 + j) % 101}" for j in range(n_words - 1)])


def jsonl_bytes(texts: list[str], field: str = "text") -> bytes:
    return "".join(json.dumps({field: t, "id": k}) + "\n" for k, t in enumerate(texts)).encode()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def counts_add_up(stats: dict[str, int]) -> bool:
    dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
    return stats["read"] == stats["kept"] + dropped


# --------------------------------------------------------------------------- HTTP server


class Server:
    """Routes: path -> (behaviour, body). Behaviours: file, 404, truncated, flaky."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server.lock:
                    server.hits[self.path] += 1
                    hits = server.hits[self.path]
                kind, body = server.routes.get(self.path, ("404", b""))
                if kind == "404":
                    self.send_error(404, "Not Found")
                    return
                if kind == "flaky" and hits == 1:
                    self.send_error(503, "Service Unavailable")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if kind == "truncated":
                    self.send_header("Content-Length", str(2 * len(body)))
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, kind: str = "file") -> str:
        self.routes[path] = (kind, body)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


PAYLOAD = os.urandom(300_000)


# --------------------------------------------------------------------------- download


def test_download_success(server: Server, tmp_path: Path) -> None:
    url = server.add("/ok.bin", PAYLOAD)
    dest = tmp_path / "sub" / "ok.bin"
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(url, dest, sha256=digest.upper(), size=len(PAYLOAD), **FAST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sha256_file(dest) == digest
    assert leftovers(dest.parent) == ["ok.bin"]
    # without any expected size/checksum the Content-Length alone is checked
    other = tmp_path / "plain.bin"
    download(url, other, **FAST)
    assert other.read_bytes() == PAYLOAD


def test_download_404(server: Server, tmp_path: Path) -> None:
    url = server.add("/missing.bin", b"", kind="404")
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError) as info:
        download(url, dest, **FAST)
    message = str(info.value)
    assert "HTTP 404" in message and url in message and str(dest) in message
    assert not dest.exists() and leftovers(tmp_path) == []
    assert server.hits["/missing.bin"] == 1  # a 404 is not retried


def test_download_truncated(server: Server, tmp_path: Path) -> None:
    url = server.add("/short.bin", b"x" * 100, kind="truncated")
    dest = tmp_path / "short.bin"
    with pytest.raises(DownloadError, match="truncated: got 100 of 200 bytes"):
        download(url, dest, retries=2, **FAST)
    assert leftovers(tmp_path) == []
    assert server.hits["/short.bin"] == 3  # truncation is transient: retried twice


def test_download_checksum_and_size_mismatch(server: Server, tmp_path: Path) -> None:
    url = server.add("/wrong.bin", b"not what you expected")
    dest = tmp_path / "wrong.bin"
    expected = hashlib.sha256(b"the real content").hexdigest()
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {expected}, got "):
        download(url, dest, sha256=expected, **FAST)
    assert leftovers(tmp_path) == []
    assert server.hits["/wrong.bin"] == 1  # a checksum mismatch is not retried
    with pytest.raises(DownloadError, match="size mismatch"):
        download(url, dest, size=5, **FAST)
    assert leftovers(tmp_path) == []


def test_existing_file_never_clobbered_by_failed_download(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old good content")
    missing = server.add("/gone.bin", b"", kind="404")
    short = server.add("/cut.bin", b"y" * 50, kind="truncated")
    wrong = server.add("/bad.bin", b"bad")
    # refresh: the existing file is downloaded again, and kept when that fails
    with pytest.raises(DownloadError):
        download(missing, dest, refresh=True, **FAST)
    with pytest.raises(DownloadError):
        download(short, dest, refresh=True, retries=0, **FAST)
    with pytest.raises(DownloadError):
        download(wrong, dest, refresh=True, sha256=hashlib.sha256(b"new").hexdigest(), **FAST)
    assert dest.read_bytes() == b"old good content"
    assert leftovers(tmp_path) == ["data.bin"]


def test_cache_hit_does_not_download(server: Server, tmp_path: Path) -> None:
    url = server.add("/cached.bin", b"served content")
    dest = tmp_path / "cached.bin"
    dest.write_bytes(b"cached content")
    download(url, dest, sha256=hashlib.sha256(b"cached content").hexdigest(), **FAST)
    download(url, dest, size=len(b"cached content"), **FAST)
    download(url, dest, **FAST)  # nothing to check it against: still never fetched again
    assert server.hits["/cached.bin"] == 0
    assert dest.read_bytes() == b"cached content"
    # an existing file that does not match stops, naming it and both hashes ...
    served = hashlib.sha256(b"served content").hexdigest()
    with pytest.raises(ChangedFileError, match=f"cached.bin changed: expected sha256 {served}"):
        download(url, dest, sha256=served, **FAST)
    assert server.hits["/cached.bin"] == 0
    # ... unless asked to refresh
    download(url, dest, sha256=served, refresh=True, **FAST)
    assert dest.read_bytes() == b"served content"
    assert server.hits["/cached.bin"] == 1


def test_retry_after_503(server: Server, tmp_path: Path) -> None:
    url = server.add("/flaky.bin", PAYLOAD[:1000], kind="flaky")
    dest = tmp_path / "flaky.bin"
    download(url, dest, sha256=hashlib.sha256(PAYLOAD[:1000]).hexdigest(), **FAST)
    assert dest.read_bytes() == PAYLOAD[:1000]
    assert server.hits["/flaky.bin"] == 2


def test_connection_refused_is_retried_then_fails(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DownloadError, match=r"connection error.*\(after 2 attempts\)"):
        download(url, tmp_path / "x.bin", retries=1, **FAST)
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_cleans_up(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.add("/interrupted.bin", PAYLOAD)

    class Interrupting:
        def __init__(self, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *args: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    monkeypatch.setattr(download_module, "tqdm", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        download(url, tmp_path / "interrupted.bin", **FAST)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- clean


def test_detokenize_wikitext_rules() -> None:
    line = " The game @-@ play sold 1 @,@ 000 copies , 3 @.@ 5 % more ( in Japan ) . "
    assert detokenize(line) == "The game-play sold 1,000 copies, 3.5% more (in Japan)."
    assert detokenize("I do n't know ; John 's dog : yes ! ok ?") == (
        "I don't know; John's dog: yes! ok?"
    )
    assert detokenize('he said " hi there " and left') == 'he said "hi there" and left'
    assert detokenize("the players ' union [ 1 ]") == "the players' union [1]"
    once = detokenize(line)
    assert detokenize(once) == once  # idempotent


def test_wikitext_lines() -> None:
    assert clean_wikitext_line(" = Valkyria Chronicles III = \n") is None
    assert clean_wikitext_line(" = = Gameplay = = \n") is None
    assert clean_wikitext_line("   \n") is None
    assert clean_wikitext_line("") is None
    assert clean_wikitext_line(" A line @-@ here . \n") == "A line @-@ here ."
    assert clean_wikitext(" A line @-@ here . \n") == "A line-here."
    assert clean_wikitext(" = Title = ") is None


def test_webtext_writingprompts_plain() -> None:
    assert clean_webtext("First para.\n\nSecond\tpara.\n") == "First para. Second para."
    cleaned = clean_writingprompts(
        "[ WP ] You wake up as a cat . ",
        "`` Hello , '' she said . <newline> <newline> I did n't answer .",
    )
    assert cleaned == '[WP] You wake up as a cat. "Hello," she said. I didn\'t answer.'
    assert "<newline>" not in cleaned and "``" not in cleaned and "''" not in cleaned
    assert clean_plain("  a \n\n b\t c ") == "a b c"
    assert CLEANERS["webtext"] is clean_webtext
    assert CLEANERS["wikitext"](" = H = ") is None


def test_length_bounds_are_exclusive() -> None:
    assert word_count("a  b\nc") == 3
    assert not length_ok(doc(0, 50))
    assert length_ok(doc(0, 51))
    assert length_ok(doc(0, 999))
    assert not length_ok(doc(0, 1000))
    assert length_ok(doc(0, 5), min_words=4, max_words=6)


# A WikiText-103 style line: split hyphen, thousands separator and decimal, a double and a
# single quotation, a split "n't", an escaped ampersand and a plural possessive.
WIKI_LINE = (
    ' The band \'s debut album , " Hello World " , sold 1 @,@ 000 copies in the U.S. @-@ based'
    " market ( sic ) ; the ' Big Four ' did n't chart &amp; 3 @.@ 5 % of fans ' votes . \n"
)


def test_official_detokenizer_on_a_wikitext_line() -> None:
    # " @" then "@ " deleted; Moses (en): no space before , ; ) . %, none after ( or an opening
    # quote, 's joined, the single quotes paired, "n't" left apart, &amp; unescaped, and the
    # lone ' after "fans" joined as a possessive
    assert clean_wikitext_official(WIKI_LINE) == (
        'The band\'s debut album, "Hello World", sold 1,000 copies in the U.S.-based'
        " market (sic); the 'Big Four' did n't chart & 3.5% of fans' votes."
    )
    assert clean_wikitext_official(" = = Gameplay = = \n") is None
    assert clean_wikitext_official("  \r\n") is None
    assert strip_at_marks("1 @,@ 000 , a @-@ b , x @ y , e@ mail") == "1,000 , a-b , x y , email"
    assert moses_detokenize("<doc id = 1>") == "<doc id = 1>"  # a tag line is left alone
    assert moses_detokenize("  ") == ""


def test_moses_detokenize_follows_the_perl_script() -> None:
    # Perl joins 's only after a word ending in a letter or digit (sacremoses always would)
    assert moses_detokenize("( Smith ) 's car") == "(Smith) 's car"
    assert moses_detokenize("日本 '語") == "日本'語"  # a letter of any script counts
    # words split at single spaces only: the tab stays, and the empty word between the two
    # spaces after the opening quote keeps a space there
    assert moses_detokenize("a\tb , c") == "a\tb, c"
    assert moses_detokenize('say "  hi " now') == 'say " hi" now'
    assert moses_detokenize("&lt;b&gt; &amp;amp;") == "<b> &amp;"  # unescaped once


def test_clean_detokenizer_on_the_same_line_is_unchanged() -> None:
    # the project's rules: single quotes left apart, "n't" joined, &amp; kept
    assert clean_wikitext(WIKI_LINE) == (
        'The band\'s debut album, "Hello World", sold 1,000 copies in the U.S.-based'
        " market (sic); the ' Big Four ' didn't chart &amp; 3.5% of fans' votes."
    )


def test_official_webtext_and_writingprompts_cleaning() -> None:
    # WebText: line breaks become spaces, nothing else (two spaces stay, the tab stays)
    assert clean_webtext_official("First para.\n\nSecond\tpara.\r\n") == (
        "First para.  Second\tpara."
    )
    joined = (
        "[ WP ] You wake up as a cat . `` Hello , '' she said . <newline> <newline>"
        " I did n't answer &amp; left ."
    )
    assert clean_writingprompts_official(joined) == (
        '[WP] You wake up as a cat. "Hello," she said. I did n\'t answer & left.'
    )


def test_cleaner_for_follows_the_detokenizer_point() -> None:
    assert cleaner_for("webtext", "clean") is clean_webtext
    assert cleaner_for("webtext", "official") is clean_webtext_official
    assert cleaner_for("wikitext", "official") is clean_wikitext_official
    assert cleaner_for("writingprompts", "official") is clean_writingprompts_official
    assert cleaner_for("plain", "official") is clean_plain is cleaner_for("plain", "clean")
    with pytest.raises(ValueError, match="detokenizer"):
        cleaner_for("webtext", "nope")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- prepare


def test_select_splits_official_first_texts_and_top_up() -> None:
    pools = {
        "train": ["t0", "t1", "t2", "t3", "t4", "t5"],
        "dev": ["d0", "d1"],
        "test": ["e0"],
    }
    # test is short by 2: the first two train texts; dev is short by 2: the next two; all
    # four leave train, which keeps its file order
    got = select_splits(pools, 4, 3, data_selection="official", seed=0)
    assert got == Selection(
        dev=["d0", "d1", "t2", "t3"],
        test=["e0", "t0", "t1"],
        train_pool=["t4", "t5"],
        top_dev=2,
        top_test=2,
    )
    # a split with more texts than asked keeps its first ones and takes nothing from train
    got = select_splits(
        {**pools, "test": ["e0", "e1", "e2"]}, 1, 2, data_selection="official", seed=0
    )
    assert got == Selection(["d0"], ["e0", "e1"], ["t0", "t1", "t2", "t3", "t4", "t5"], 0, 0)
    # a train pool too small for both top-ups: test first, dev gets the rest
    got = select_splits(
        {"train": ["t0", "t1"], "test": ["e0"]}, 2, 2, data_selection="official", seed=0
    )
    assert got == Selection(["t1"], ["e0", "t0"], [], 1, 1)
    # one split "all" (as train): test, then dev, then train, in file order
    got = select_splits(
        {"train": [f"a{i}" for i in range(7)]}, 2, 3, data_selection="official", seed=9
    )
    assert got == Selection(["a3", "a4"], ["a0", "a1", "a2"], ["a5", "a6"], 2, 3)
    with pytest.raises(ValueError, match="data_selection"):
        select_splits(pools, 1, 1, data_selection="nope", seed=0)  # type: ignore[arg-type]


def test_prepare_official_selection_by_hand() -> None:
    raw = {
        "train": ["t0 x", "t1 x", "t2 x", "t3 x", "t4 x", "t5 x", "t1 x", "e0 x", "t6 x"],
        "dev": ["d0 x", "d1 too long for the bound", "d2 x"],
        "test": ["e0 x"],
    }
    kw = {"n_dev": 4, "n_test": 3, "train_sizes": [4], "seed": 0, "min_words": 1, "max_words": 4}
    splits, report = prepare(raw, "plain", data_selection="official", **kw)
    # the length filter first (d1 has 5 words), no deduplication, then file order: test
    # "e0 x" + train 0-1, dev "d0 x" "d2 x" + train 2-3, train from index 4 cut to 4 texts
    assert splits == {
        "test": ["e0 x", "t0 x", "t1 x"],
        "dev": ["d0 x", "d2 x", "t2 x", "t3 x"],
        "train": ["t4 x", "t5 x", "t1 x", "e0 x"],
    }
    assert report["origin"] == {"dev": {"dev": 2, "train": 2}, "test": {"test": 1, "train": 2}}
    assert report["splits"]["dev"]["dropped_too_long"] == 1
    assert report["splits"]["train"]["dropped_duplicate"] == 0
    assert report["repeats"] == {
        "within_train": 0,
        "within_dev": 0,
        "within_test": 0,
        "train_in_dev_or_test": 2,  # "t1 x" (in test) and "e0 x" (test)
        "dev_in_test": 0,
    }
    assert report["train_pool"] == 5 and report["unused"]["train"] == 1
    assert report["protocol"] == {"data_selection": "official", "detokenizer": "official"}
    assert report["selection"] == "file order"
    # the same raw texts under clean: duplicates and overlaps dropped, shuffled with the seed
    splits, report = prepare(raw, "plain", data_selection="clean", **kw)
    assert report["splits"]["train"]["dropped_duplicate"] == 1
    assert report["splits"]["train"]["dropped_overlap"] == 1
    assert not any(report["repeats"].values())
    # kept: dev d0 d2, test e0, train t0-t6 (7 texts); dev and test topped up with 2 each
    assert report["final"] == {"train": 3, "dev": 4, "test": 3}
    assert report["unmet_train_sizes"] == [4]
    everything = splits["test"] + splits["dev"] + splits["train"]
    assert sorted(everything) == ["d0 x", "d2 x", "e0 x"] + [f"t{i} x" for i in range(7)]
    with pytest.raises(ValueError, match="data_selection"):
        prepare(raw, "plain", data_selection="nope", **kw)  # type: ignore[arg-type]


def official_raw(n_train: int = 200, n_dev: int = 30, n_test: int = 30) -> dict[str, list[str]]:
    return {
        "train": [doc(i, tag="tr") for i in range(n_train)],
        "dev": [doc(i, tag="dv") for i in range(n_dev)],
        "test": [doc(i, tag="te") for i in range(n_test)],
    }


@pytest.mark.parametrize("selection", ["official", "clean"])
def test_train_sizes_are_nested(selection: str) -> None:
    raw = official_raw()
    kw = {"n_dev": 20, "n_test": 20, "seed": 3, "data_selection": selection}
    big, report = prepare(raw, "plain", train_sizes=[10, 50, 100], **kw)
    assert len(big["train"]) == 100
    assert report["available_train_sizes"] == [10, 50, 100]
    for size in (10, 50):
        small, _ = prepare(raw, "plain", train_sizes=[size], **kw)
        assert small["train"] == big["train"][:size]
        assert small["dev"] == big["dev"] and small["test"] == big["test"]


def test_train_never_overlaps_dev_or_test() -> None:
    raw = official_raw()
    # the official train split holds dev and test texts (with different whitespace)
    raw["train"] += [" " + t.replace(" ", "  ") for t in raw["dev"][:7] + raw["test"][:5]]
    raw["test"] += raw["dev"][:2]
    splits, report = prepare(
        raw, "plain", n_dev=30, n_test=32, train_sizes=[500], seed=0, data_selection="clean"
    )
    held = set(splits["dev"]) | set(splits["test"])
    assert not held & set(splits["train"])
    assert not set(splits["dev"]) & set(splits["test"])
    assert report["splits"]["train"]["dropped_overlap"] == 12
    assert report["splits"]["test"]["dropped_overlap"] == 2
    assert len(splits["train"]) == 200 - 2  # two train texts topped up the test split
    assert report["unmet_train_sizes"] == [500]


def test_top_up_from_train_when_dev_is_short() -> None:
    raw = official_raw(n_dev=5, n_test=12)
    raw["dev"] += [doc(i, n_words=10, tag="short") for i in range(4)]  # dropped: too short
    splits, report = prepare(
        raw, "plain", n_dev=8, n_test=10, train_sizes=[100], seed=1, data_selection="clean"
    )
    assert len(splits["dev"]) == 8 and len(splits["test"]) == 10
    assert report["origin"]["dev"] == {"dev": 5, "train": 3}
    assert report["origin"]["test"] == {"test": 10, "train": 0}
    assert report["unused"]["test"] == 2
    from_train = [t for t in splits["dev"] if t.startswith("tr")]
    assert len(from_train) == 3 and not set(from_train) & set(splits["train"])
    assert report["train_pool"] == 200 - 3
    assert report["splits"]["dev"]["dropped_too_short"] == 4


def test_prepare_is_deterministic_and_seeded() -> None:
    raw = official_raw()
    kw = {"n_dev": 10, "n_test": 10, "train_sizes": [200], "data_selection": "clean"}
    a, report_a = prepare(raw, "plain", seed=7, **kw)
    b, report_b = prepare(raw, "plain", seed=7, **kw)
    c, _ = prepare(raw, "plain", seed=8, **kw)
    assert a == b and report_a == report_b
    assert a["train"] != c["train"] and sorted(a["train"]) == sorted(c["train"])
    assert a["dev"] != c["dev"]
    json.dumps(report_a)  # JSON-able


def test_report_counts_add_up() -> None:
    raw = official_raw()
    raw["train"] += ["", "   ", doc(0, 10), doc(1, 1000), doc(2, 50), raw["train"][3]]
    raw["train"] += [raw["dev"][0]]
    splits, report = prepare(
        raw, "plain", n_dev=25, n_test=25, train_sizes=[100], seed=0, data_selection="clean"
    )
    train = report["splits"]["train"]
    assert train == {
        "read": 207,
        "dropped_empty": 2,
        "dropped_too_short": 2,
        "dropped_too_long": 1,
        "dropped_duplicate": 1,
        "dropped_overlap": 1,
        "kept": 200,
    }
    assert all(counts_add_up(s) for s in report["splits"].values())
    assert report["final"] == {"train": 100, "dev": 25, "test": 25}
    assert report["unused"] == {"dev": 5, "test": 5, "train": 100}
    assert (report["seed"], report["min_words"], report["max_words"]) == (0, 50, 1000)


def test_single_split_source_and_check_sizes() -> None:
    raw = {"all": [doc(i) for i in range(60)]}
    kw = {"seed": 0, "data_selection": "clean"}
    splits, report = prepare(
        raw, "plain", n_dev=10, n_test=10, train_sizes=[20, 40, 100], dataset="tiny", **kw
    )
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [40, 10, 10]
    assert set(report["splits"]) == {"all"}
    assert report["available_train_sizes"] == [20, 40]
    assert report["unmet_train_sizes"] == [100]
    check_sizes(report, [20, 40])  # fine
    with pytest.raises(ValueError, match=r"'tiny'.*train size 100 \(only 40 usable"):
        check_sizes(report, [20, 40, 100])
    _, short = prepare(raw, "plain", n_dev=50, n_test=20, train_sizes=[1], **kw)
    with pytest.raises(ValueError, match=r"test size 20 \(only 10 usable texts\)"):
        check_sizes(short, [1], dataset="tiny")


def test_prepare_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown text format"):
        prepare({"all": []}, "nope", n_dev=1, n_test=1, train_sizes=[1], seed=0)
    with pytest.raises(ValueError, match="raw splits"):
        prepare({"dev": []}, "plain", n_dev=1, n_test=1, train_sizes=[1], seed=0)


# --------------------------------------------------------------------------- sources


def test_fetch_webtext_end_to_end(server: Server, tmp_path: Path) -> None:
    texts = {
        "train": [doc(i, tag="wt") + "\n\nmore" for i in range(40)],
        "valid": [doc(i, tag="wv") for i in range(6)] + [doc(0, 20)],
        "test": [doc(i, tag="ws") for i in range(10)],
    }
    bodies = {split: jsonl_bytes(t) for split, t in texts.items()}
    urls = {
        ours: server.add(f"/gpt-2/webtext.{theirs}.jsonl", bodies[theirs])
        for ours, theirs in (("train", "train"), ("dev", "valid"), ("test", "test"))
    }
    spec = {
        "source": "url",
        "urls": urls,
        "sha256": {"train": hashlib.sha256(bodies["train"]).hexdigest(), "dev": None},
        "format": "webtext",
    }
    assert needs_download(spec) and format_of(spec) == "webtext"
    dest = tmp_path / "resources" / "webtext"
    manifest = fetch(spec, dest)
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"]
    assert manifest["files"]["dev"]["file"] == "webtext.valid.jsonl"
    assert manifest["files"]["test"]["sha256"] == hashlib.sha256(bodies["test"]).hexdigest()
    assert manifest["files"]["train"]["url"] == urls["train"]
    assert [p.name for p in dest.iterdir() if p.name.endswith(".part")] == []

    raw = read_raw(spec, dest)
    assert {k: len(v) for k, v in raw.items()} == {"train": 40, "dev": 7, "test": 10}
    splits, report = prepare(raw, "webtext", n_dev=8, n_test=8, train_sizes=[20], seed=0)
    assert report["origin"]["dev"] == {"dev": 6, "train": 2}
    assert report["splits"]["dev"]["dropped_too_short"] == 1
    assert all("\n" not in t for s in splits.values() for t in s)
    assert all(t.endswith(" more") for t in splits["train"])


def test_fetch_failure_leaves_no_manifest(server: Server, tmp_path: Path) -> None:
    spec = {
        "source": "url",
        "urls": {
            "train": server.add("/w/train.jsonl", jsonl_bytes(["a"])),
            "dev": server.add("/w/valid.jsonl", b"", kind="404"),
            "test": server.add("/w/test.jsonl", jsonl_bytes(["b"])),
        },
        "format": "webtext",
    }
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "manifest.json").write_text("{}")  # from an earlier fetch
    with pytest.raises(DownloadError, match="404"):
        fetch(spec, tmp_path / "w")
    assert not (tmp_path / "w" / "manifest.json").exists()


def wp_archive(splits: dict[str, list[tuple[str, str]]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for split, pairs in splits.items():
            for suffix, column in (("wp_source", 0), ("wp_target", 1)):
                data = "".join(pair[column] + "\n" for pair in pairs).encode()
                info = tarfile.TarInfo(f"writingPrompts/{split}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fetch_writingprompts_end_to_end(server: Server, tmp_path: Path) -> None:
    def pair(i: int, tag: str) -> tuple[str, str]:
        story = f"`` Hi , '' said {tag}{i} . <newline> <newline> " + doc(i, tag=tag) + " ."
        return (f"[ WP ] Prompt number {i} .", story)

    archive = wp_archive(
        {
            "train": [pair(i, "tr") for i in range(30)],
            "valid": [pair(i, "dv") for i in range(12)],
            "test": [pair(i, "te") for i in range(12)],
        }
    )
    url = server.add("/fairseq/writingPrompts.tar.gz", archive)
    spec = {
        "source": "url",
        "urls": {"archive": url},
        "sha256": {"archive": hashlib.sha256(archive).hexdigest()},
        "format": "writingprompts",
    }
    dest = tmp_path / "writingprompts"
    manifest = fetch(spec, dest)
    assert manifest["files"]["archive"]["file"] == "writingPrompts.tar.gz"
    raw = read_raw(spec, dest)
    assert {k: len(v) for k, v in raw.items()} == {"train": 30, "dev": 12, "test": 12}
    assert raw["dev"][0].startswith("[ WP ] Prompt number 0 . `` Hi , ''")
    splits, report = prepare(raw, "writingprompts", n_dev=12, n_test=10, train_sizes=[30], seed=0)
    assert report["final"] == {"train": 30, "dev": 12, "test": 10}
    assert report["unused"]["test"] == 2
    expected = '[WP] Prompt number 3. "Hi," said dv3. ' + doc(3, tag="dv") + "."
    assert expected in splits["dev"]
    assert all("<newline>" not in t and "``" not in t for s in splits.values() for t in s)


def test_hub_source_through_datasets(tmp_path: Path) -> None:
    lines = {
        "train": [" = Title = \n", ""] + [f" {doc(i, tag='tr')} @-@ x . \n" for i in range(25)],
        "validation": [" = = Section = = \n"] + [f" {doc(i, tag='dv')} , y \n" for i in range(4)],
        "test": [f" {doc(i, tag='te')} \n" for i in range(6)] + ["", ""],
    }
    files = {}
    for split, texts in lines.items():
        files[split] = str(tmp_path / f"{split}.parquet")
        pd.DataFrame({"text": texts}).to_parquet(files[split])
    spec = {"source": "hub", "name": "parquet", "data_files": files, "format": "wikitext"}
    dest = tmp_path / "resources" / "wikitext"
    manifest = fetch(spec, dest, cache_dir=tmp_path / "hf-cache")
    assert set(manifest["files"]) == {"train", "dev", "test"}
    assert manifest["files"]["dev"]["split"] == "validation"
    assert manifest["files"]["train"]["rows"] == 27
    assert (dest / "dev.jsonl").is_file() and (dest / "manifest.json").is_file()
    raw = read_raw(spec, dest)
    assert {k: len(v) for k, v in raw.items()} == {"train": 25, "dev": 4, "test": 6}
    splits, report = prepare(raw, "wikitext", n_dev=5, n_test=5, train_sizes=[20], seed=0)
    assert report["origin"]["dev"] == {"dev": 4, "train": 1}
    assert all(t.endswith("-x.") for t in splits["train"])
    assert all(t.endswith(", y") for t in splits["dev"] if t.startswith("dv"))


def test_hub_source_from_local_directory(tmp_path: Path) -> None:
    data = tmp_path / "mydata"
    data.mkdir()
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_bytes(jsonl_bytes([doc(i, tag=split) for i in range(3)]))
    spec = {"source": "hub", "name": str(data), "format": "plain"}
    fetch(spec, tmp_path / "out", cache_dir=tmp_path / "hf-cache")
    raw = read_raw(spec, tmp_path / "out")
    assert raw["dev"] == [doc(i, tag="validation") for i in range(3)]


def test_validate_spec_checks_what_the_schema_cannot() -> None:
    urls = {s: f"https://x/{s}" for s in ("train", "dev", "test")}
    validate_spec({"source": "url", "urls": urls, "format": "webtext", "sha256": {"dev": None}})
    validate_spec({"source": "hub", "name": "x", "format": "plain", "revision": "main"})
    validate_spec({"source": "embedded", "corpus": "news"})
    bad = [
        ({"source": "url", "urls": urls, "format": "jsonl"}, "format must be one of"),
        ({"source": "local", "path": "x", "format": "wikitext"}, "format must be one of"),
        ({"source": "url", "urls": urls, "format": "writingprompts"}, r"keys \['archive'\]"),
        ({"source": "url", "urls": urls, "format": "webtext", "size": {"x": 1}}, "not in urls"),
        ({"source": "url", "urls": urls, "format": "webtext", "revision": "v1"}, "not pins of"),
        ({"source": "hub", "name": "x", "format": "plain", "sha256": {"a": "b"}}, "not pins of"),
    ]
    for spec, message in bad:
        with pytest.raises(ValueError, match=message):
            validate_spec(spec)


def test_local_readers(tmp_path: Path) -> None:
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text(
        json.dumps({"body": "one two"}) + "\n\n" + json.dumps({"body": ""}) + "\n", "utf-8"
    )
    spec = {"source": "local", "path": str(jsonl), "format": "jsonl", "text_field": "body"}
    assert not needs_download(spec)
    assert read_raw(spec, None) == {"all": ["one two", ""]}
    with pytest.raises(ValueError, match="nothing to download"):
        fetch(spec, tmp_path / "x")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "fine too"}\n{"text": broken\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3"):
        read_raw({"source": "local", "path": str(bad), "format": "jsonl"}, None)
    bad.write_text('{"text": "fine"}\n{"other": 1}\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: expected .* 'text'"):
        read_raw({"source": "local", "path": str(bad), "format": "jsonl"}, None)

    txt = tmp_path / "texts.txt"
    txt.write_text("\nfirst block\nstill first\n\n  \nsecond block\n\n\nthird", "utf-8")
    raw = read_raw({"source": "local", "path": str(txt), "format": "txt"}, None)
    assert raw == {"all": ["first block\nstill first", "second block", "third"]}
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_raw({"source": "local", "path": str(tmp_path / "nope.txt"), "format": "txt"}, None)


@pytest.mark.parametrize("corpus", ["news", "enwiki"])
def test_embedded_corpora(corpus: str) -> None:
    spec = {"source": "embedded", "corpus": corpus}
    raw = read_raw(spec, None)
    splits, report = prepare(raw, format_of(spec), n_dev=20, n_test=20, train_sizes=[50], seed=0)
    assert report["splits"]["all"]["kept"] > 100
    assert report["final"] == {"train": 50, "dev": 20, "test": 20}
    assert all(50 < word_count(t) < 1000 for s in splits.values() for t in s)


# --------------------------------------------------------------------------- scripts


SCRIPT_SIZES = (("tr", 24), ("dv", 30), ("te", 30))


def run_script(name: str, smk: SimpleNamespace) -> None:
    runpy.run_path(str(ROOT / "rules" / "scripts" / name), init_globals={"snakemake": smk})


def test_scripts_download_and_prepare(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the script sets it; undone after
    bodies = {s: jsonl_bytes([doc(i, tag=s) for i in range(n)]) for s, n in SCRIPT_SIZES}
    spec = {
        "source": "url",
        "urls": {
            "train": server.add("/s/train.jsonl", bodies["tr"]),
            "dev": server.add("/s/valid.jsonl", bodies["dv"]),
            "test": server.add("/s/test.jsonl", bodies["te"]),
        },
        "format": "webtext",
    }
    manifest = tmp_path / "resources" / "webtext" / "manifest.json"
    run_script(
        "gpt2_download.py",
        SimpleNamespace(
            params=SimpleNamespace(spec=spec, hf_home=str(tmp_path / "resources" / "hf")),
            output=SimpleNamespace(manifest=str(manifest)),
            log=[str(tmp_path / "logs" / "download.log")],
            wildcards=SimpleNamespace(dataset="webtext"),
            config={"gpt2": {"datasets": {"webtext": spec}}},
        ),
    )
    assert manifest.is_file()
    assert "manifest.json (3 files)" in (tmp_path / "logs" / "download.log").read_text()

    out = tmp_path / "results" / "data" / "webtext"
    outputs = {s: str(out / f"{s}.jsonl") for s in ("train", "dev", "test")}
    params = {
        "spec": spec,
        "dataset": "webtext",
        "n_dev": 10,
        "n_test": 10,
        "train_sizes": [10, 20],
        "seed": 0,
        "protocol": {"data_selection": "clean", "detokenizer": "clean"},
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(manifest=str(manifest)),
        params=SimpleNamespace(**params),
        output=SimpleNamespace(**outputs, report=str(out / "report.json")),
        log=[str(tmp_path / "logs" / "prepare.log")],
    )
    run_script("gpt2_prepare.py", smk)
    assert len(read_split(outputs["train"])) == 20
    assert read_split(outputs["dev"])[0].startswith("dv")
    report = json.loads((out / "report.json").read_text())
    assert report["final"] == {"train": 20, "dev": 10, "test": 10}
    assert report["spec"]["format"] == "webtext"
    assert report["selection"] == "seeded shuffle"

    # a size that cannot be met: nothing is written, the log says why
    failed = tmp_path / "results" / "failed"
    smk.params = SimpleNamespace(**{**params, "train_sizes": [10, 25]})
    smk.output = SimpleNamespace(
        **{s: str(failed / f"{s}.jsonl") for s in ("train", "dev", "test")},
        report=str(failed / "report.json"),
    )
    with pytest.raises(ValueError, match="train size 25"):
        run_script("gpt2_prepare.py", smk)
    assert not failed.exists() or leftovers(failed) == []
    assert "train size 25" in (tmp_path / "logs" / "prepare.log").read_text()


def test_prepare_script_local_source_without_manifest(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n\n".join(doc(i) for i in range(40)), "utf-8")
    out = tmp_path / "out"
    smk = SimpleNamespace(
        input=SimpleNamespace(manifest=[]),
        params=SimpleNamespace(
            spec={"source": "local", "path": str(source), "format": "txt"},
            dataset="mine",
            n_dev=5,
            n_test=5,
            train_sizes=[30],
            seed=1,
            min_words=10,
            max_words=100,
            protocol={"data_selection": "official", "detokenizer": "official"},
        ),
        output=SimpleNamespace(
            **{s: str(out / f"{s}.jsonl") for s in ("train", "dev", "test")},
            report=str(out / "report.json"),
        ),
        log=[str(tmp_path / "prepare.log")],
    )
    run_script("gpt2_prepare.py", smk)
    texts = [t for s in ("train", "dev", "test") for t in read_split(out / f"{s}.jsonl")]
    assert sorted(texts) == sorted(doc(i) for i in range(40))
    report = json.loads((out / "report.json").read_text())
    assert report["min_words"] == 10
    # official data_selection: file order, test first, then dev, then train
    assert read_split(out / "test.jsonl") == [doc(i) for i in range(5)]
    assert read_split(out / "dev.jsonl") == [doc(i) for i in range(5, 10)]
    assert read_split(out / "train.jsonl") == [doc(i) for i in range(10, 40)]
    assert report["protocol"] == {"data_selection": "official", "detokenizer": "official"}


def test_writingprompts_archive_errors(tmp_path: Path) -> None:
    spec = {"source": "url", "urls": {"archive": "http://unused"}, "format": "writingprompts"}

    def write(archive: bytes) -> Path:
        dest = tmp_path / "wp"
        dest.mkdir(exist_ok=True)
        (dest / "writingPrompts.tar.gz").write_bytes(archive)
        sha = hashlib.sha256(archive).hexdigest()
        entry = {"file": "writingPrompts.tar.gz", "size": len(archive), "sha256": sha}
        (dest / "manifest.json").write_text(json.dumps({"files": {"archive": entry}}))
        return dest

    good = {s: [("[ WP ] p\r.", "story")] for s in ("train", "valid", "test")}
    raw = read_raw(spec, write(wp_archive(good)))
    assert raw["test"] == ["[ WP ] p\r. story"]  # a stray \r does not split a line
    with pytest.raises(ValueError, match=r"no member\(s\) test.wp_source, test.wp_target"):
        read_raw(spec, write(wp_archive({s: good[s] for s in ("train", "valid")})))
    bad = {**good, "valid": [("a", "b"), ("c", "d")]}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for split, pairs in bad.items():
            for suffix, lines in (("wp_source", pairs), ("wp_target", pairs[:1])):
                column = 0 if suffix == "wp_source" else 1
                data = "".join(pair[column] + "\n" for pair in lines).encode()
                info = tarfile.TarInfo(f"writingPrompts/{split}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="dev has 2 prompts but 1 stories"):
        read_raw(spec, write(buffer.getvalue()))
