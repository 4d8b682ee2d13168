"""Pinned downloads (issue 13, part 1): pins, records, refresh, hub revisions, HF caches.

Every HTTP request goes to servers on 127.0.0.1 started here: a file server for the url
sources and a stand-in for the Hugging Face hub's revision API (``/api/datasets/<name>`` and
``/api/models/<name>``, optionally ``/revision/<rev>``), which huggingface_hub's HfApi asks
for the commit a revision points to. Dataset contents come from local parquet files
(``datasets.load_dataset`` is wrapped to note the revision it was asked for), models from a
tiny GPT-2 built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest
import yaml

from mixce.config import load_config, validate_config
from mixce.gpt2 import models
from mixce.gpt2.data import download as download_module
from mixce.gpt2.data.download import (
    ChangedFileError,
    DownloadError,
    check_model_pin,
    hub_commit,
    is_commit,
    model_record_path,
)
from mixce.gpt2.data.sources import (
    MANIFEST,
    RECORD,
    check_pins,
    content_spec,
    fetch,
    pins_of,
    read_raw,
)

ROOT = Path(__file__).resolve().parents[1]
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()


# --------------------------------------------------------------------------- servers


class Servers:
    """A file server (``files``: path -> body) and a hub revision API (``commits``:
    (kind, name, revision) -> commit, revision "main" when none is given) on 127.0.0.1."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.commits: dict[tuple[str, str, str], str] = {}
        self.hits: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.hits[self.path] += 1
                body = outer.answer(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str) -> bytes | None:
        if path.startswith("/api/"):
            _, _, kind, rest = path.split("/", 3)
            name, _, revision = rest.partition("/revision/")
            commit = self.commits.get((kind[:-1], name, unquote(revision) or "main"))
            return None if commit is None else json.dumps({"id": name, "sha": commit}).encode()
        return self.files.get(path)

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base + path

    def api_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path.startswith("/api/"))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    srv = Servers()
    yield srv
    srv.close()


# --------------------------------------------------------------------------- url sources


def webtext_spec(servers: Servers, bodies: dict[str, bytes]) -> dict[str, Any]:
    urls = {key: servers.add(f"/v1/webtext.{key}.jsonl", body) for key, body in bodies.items()}
    return {"source": "url", "format": "webtext", "urls": urls}


BODIES = {"train": jsonl(["one", "two"]), "dev": jsonl(["three"]), "test": jsonl(["four"])}


def test_first_download_records_and_a_rerun_fetches_nothing(
    servers: Servers, tmp_path: Path
) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    manifest = fetch(spec, dest)
    record = json.loads((dest / RECORD).read_text())
    for key, body in BODIES.items():
        expected = {"sha256": sha(body), "size": len(body)}
        assert {k: record["files"][key][k] for k in expected} == expected
        assert {k: manifest["files"][key][k] for k in expected} == expected
    assert sum(servers.hits.values()) == 3
    # Snakemake deletes the manifest before it reruns the rule; the record stays
    (dest / MANIFEST).unlink()
    again = fetch(spec, dest)
    assert sum(servers.hits.values()) == 3  # nothing fetched again
    assert again["files"] == manifest["files"]
    assert read_raw(spec, dest)["dev"] == ["three"]


def test_server_serving_another_file_stops_naming_it_and_both_hashes(
    servers: Servers, tmp_path: Path
) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    fetch(spec, dest)
    (dest / "webtext.dev.jsonl").unlink()  # lost; the server now has another file
    servers.add("/v1/webtext.dev.jsonl", jsonl(["changed upstream"]))
    with pytest.raises(DownloadError) as info:
        fetch(spec, dest)
    message = str(info.value)
    assert "webtext.dev.jsonl" in message and "refresh" in message
    assert f"sha256 mismatch: expected {sha(BODIES['dev'])}" in message
    assert f"got {sha(jsonl(['changed upstream']))}" in message
    assert not (dest / "webtext.dev.jsonl").exists() and not (dest / MANIFEST).exists()
    # asked to refresh: downloaded and recorded anew
    fetch(spec, dest, refresh=True)
    record = json.loads((dest / RECORD).read_text())
    assert record["files"]["dev"]["sha256"] == sha(jsonl(["changed upstream"]))
    assert read_raw(spec, dest)["dev"] == ["changed upstream"]


def test_changed_file_on_disk_stops_without_fetching(servers: Servers, tmp_path: Path) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    fetch(spec, dest)
    hits = sum(servers.hits.values())
    edited = jsonl(["thref"])  # same size as the recorded file, other bytes
    assert len(edited) == len(BODIES["dev"])
    (dest / "webtext.dev.jsonl").write_bytes(edited)
    # read_raw (the prepare rule) checks the files against the manifest ...
    with pytest.raises(ChangedFileError, match=f"found 18 bytes, sha256 {sha(edited)}"):
        read_raw(spec, dest)
    # ... and a rerun of the download against the record
    with pytest.raises(ChangedFileError) as info:
        fetch(spec, dest)
    message = str(info.value)
    assert str(dest / "webtext.dev.jsonl") in message
    assert f"expected 18 bytes, sha256 {sha(BODIES['dev'])} (recorded" in message
    assert f"found 18 bytes, sha256 {sha(edited)}" in message
    assert sum(servers.hits.values()) == hits


def test_read_raw_checks_sizes_and_hashes(servers: Servers, tmp_path: Path) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    fetch(spec, dest)
    (dest / "webtext.test.jsonl").write_bytes(jsonl(["longer than before"]))
    with pytest.raises(ChangedFileError, match=r"webtext.test.jsonl changed: expected 17 bytes, "):
        read_raw(spec, dest)


def test_pins_checked_on_first_download_and_against_the_record(
    servers: Servers, tmp_path: Path
) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    wrong = sha(b"something else")
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {wrong}"):
        fetch({**spec, "sha256": {"train": wrong}}, dest)
    assert not (dest / "webtext.train.jsonl").exists()
    with pytest.raises(DownloadError, match="size mismatch: expected 1 bytes"):
        fetch({**spec, "size": {"train": 1}}, dest)
    pinned = {
        **spec,
        "sha256": {k: sha(b).upper() for k, b in BODIES.items()},  # case does not matter
        "size": {k: len(b) for k, b in BODIES.items()},
    }
    fetch(pinned, dest)
    hits = sum(servers.hits.values())
    check_pins(pinned, dest)  # agrees with the record
    fetch(pinned, dest)
    assert sum(servers.hits.values()) == hits
    # a pin that disagrees with the record stops before anything is read or fetched
    other = {**spec, "sha256": {"dev": wrong}}
    for call in (lambda: check_pins(other, dest), lambda: fetch(other, dest)):
        with pytest.raises(ChangedFileError) as info:
            call()
        message = str(info.value)
        assert "webtext.dev.jsonl" in message and "pinned in the config" in message
        assert wrong in message and sha(BODIES["dev"]) in message
    with pytest.raises(ChangedFileError, match=r"expected 7 bytes \(pinned"):
        check_pins({**spec, "size": {"test": 7}}, dest)
    assert sum(servers.hits.values()) == hits


def test_moved_host_keeps_the_cached_file(servers: Servers, tmp_path: Path) -> None:
    spec = webtext_spec(servers, BODIES)
    dest = tmp_path / "webtext"
    fetch(spec, dest)
    hits = sum(servers.hits.values())
    moved = {**spec, "urls": {k: u.replace("/v1/", "/moved/v1/") for k, u in spec["urls"].items()}}
    manifest = fetch(moved, dest)
    assert sum(servers.hits.values()) == hits
    assert manifest["files"]["train"]["url"] == spec["urls"]["train"]  # where the bytes came from


def test_download_keeps_its_guarantees_with_pooch(servers: Servers, tmp_path: Path) -> None:
    """Existing files are never fetched again; only refresh replaces them, atomically."""
    url = servers.add("/f.bin", b"served")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"cached")
    assert download_module.download(url, dest) == dest
    assert servers.hits["/f.bin"] == 0 and dest.read_bytes() == b"cached"
    with pytest.raises(ChangedFileError, match=f"expected sha256 {sha(b'served')}, found sha256"):
        download_module.download(url, dest, sha256=sha(b"served"))
    download_module.download(url, dest, sha256=sha(b"served"), refresh=True)
    assert dest.read_bytes() == b"served"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


# --------------------------------------------------------------------------- hub datasets


@pytest.fixture
def hub_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Parquet files standing in for a hub dataset; load_dataset notes each revision."""
    import datasets

    files = {}
    for split, texts in {"train": ["a b", "c d"], "validation": ["e f"], "test": ["g"]}.items():
        files[split] = str(tmp_path / f"{split}.parquet")
        pd.DataFrame({"text": texts}).to_parquet(files[split])
    real = datasets.load_dataset
    calls: list[str | None] = []

    def load(name: str, subset: str | None = None, **kwargs: Any) -> Any:
        calls.append(kwargs.get("revision"))
        return real("parquet", data_files=files, cache_dir=kwargs.get("cache_dir"))

    monkeypatch.setattr(datasets, "load_dataset", load)
    return {"calls": calls, "cache": tmp_path / "hf" / "datasets"}


def test_hub_dataset_commit_recorded_and_loaded_again(
    servers: Servers, tmp_path: Path, hub_data: dict[str, Any]
) -> None:
    servers.commits[("dataset", "org/wiki", "main")] = COMMIT_A
    spec = {"source": "hub", "name": "org/wiki", "format": "plain"}
    dest = tmp_path / "wiki"
    kwargs = {"cache_dir": hub_data["cache"], "endpoint": servers.base}
    manifest = fetch(spec, dest, **kwargs)
    assert manifest["hub"]["commit"] == COMMIT_A and hub_data["calls"] == [COMMIT_A]
    assert json.loads((dest / RECORD).read_text())["hub"]["commit"] == COMMIT_A
    assert servers.api_hits() == 1
    # rerun with the files there: neither the hub nor load_dataset is asked
    fetch(spec, dest, **kwargs)
    assert servers.api_hits() == 1 and len(hub_data["calls"]) == 1
    # the default branch moved on and a file was lost: the recorded commit is loaded again
    servers.commits[("dataset", "org/wiki", "main")] = COMMIT_B
    (dest / "dev.jsonl").unlink()
    fetch(spec, dest, **kwargs)
    assert hub_data["calls"][-1] == COMMIT_A and servers.api_hits() == 1
    assert read_raw(spec, dest)["dev"] == ["e f"]
    # a pin on another revision stops, naming both, before the hub is asked ...
    pinned = {**spec, "revision": COMMIT_B}
    with pytest.raises(ChangedFileError) as info:
        fetch(pinned, dest, **kwargs)
    assert COMMIT_B in str(info.value) and COMMIT_A in str(info.value)
    # ... and the recorded commit or the revision first asked for are accepted as pins
    check_pins({**spec, "revision": COMMIT_A}, dest)
    # refresh: a branch pin resolved through the hub's API, recorded anew
    servers.commits[("dataset", "org/wiki", "v2")] = COMMIT_B
    manifest = fetch({**spec, "revision": "v2"}, dest, refresh=True, **kwargs)
    assert manifest["hub"] == {**manifest["hub"], "revision": "v2", "commit": COMMIT_B}
    assert hub_data["calls"][-1] == COMMIT_B
    check_pins({**spec, "revision": "v2"}, dest)
    check_pins(pinned, dest)


def test_hub_dataset_name_change_stops(
    servers: Servers, tmp_path: Path, hub_data: dict[str, Any]
) -> None:
    servers.commits[("dataset", "org/wiki", "main")] = COMMIT_A
    spec = {"source": "hub", "name": "org/wiki", "format": "plain"}
    fetch(spec, tmp_path / "d", cache_dir=hub_data["cache"], endpoint=servers.base)
    with pytest.raises(ChangedFileError, match="hub name 'org/other'"):
        check_pins({**spec, "name": "org/other"}, tmp_path / "d")


def test_hub_commit_resolution(servers: Servers) -> None:
    servers.commits[("model", "gpt2", "main")] = COMMIT_A
    servers.commits[("model", "gpt2", "refs/pr/1")] = COMMIT_B
    assert hub_commit("model", "gpt2", endpoint=servers.base) == COMMIT_A
    assert hub_commit("model", "gpt2", "refs/pr/1", endpoint=servers.base) == COMMIT_B
    assert hub_commit("model", "gpt2", COMMIT_B, endpoint=servers.base) == COMMIT_B
    assert servers.api_hits() == 2  # a commit hash is not looked up
    assert is_commit(COMMIT_A) and not is_commit("main") and not is_commit(None)
    with pytest.raises(OSError, match="404 Not Found"):  # huggingface_hub's HfHubHTTPError
        hub_commit("dataset", "nobody/nothing", endpoint=servers.base)


# --------------------------------------------------------------------------- hub models


@pytest.fixture
def tiny_hub(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """models.hub_model returns a tiny GPT-2 and notes its arguments."""
    calls: list[dict[str, Any]] = []
    spec = {"n_layer": 1, "n_head": 1, "n_embd": 8, "n_positions": 16}

    def fake(name: str, revision: str | None = None, cache_dir: Any = None) -> Any:
        calls.append({"name": name, "revision": revision, "cache_dir": cache_dir})
        return models.scratch_model(spec, seed=0)

    monkeypatch.setattr(models, "hub_model", fake)
    return calls


def test_hub_model_revision_recorded_and_pinned(
    servers: Servers, tmp_path: Path, tiny_hub: list[dict[str, Any]]
) -> None:
    servers.commits[("model", "org/gpt2", "main")] = COMMIT_A
    out = tmp_path / "resources" / "models" / "small"
    record = model_record_path(out)
    assert record == tmp_path / "resources" / "models" / "small.record.json"
    kwargs = {"cache_dir": tmp_path / "hf", "endpoint": servers.base}
    manifest = models.fetch_hub_model("org/gpt2", out, record, **kwargs)
    assert manifest["commit"] == COMMIT_A and tiny_hub[-1]["revision"] == COMMIT_A
    assert json.loads((out / "manifest.json").read_text())["commit"] == COMMIT_A
    assert json.loads(record.read_text())["commit"] == COMMIT_A
    assert models.load_model(out) is not None
    # a later fetch loads the recorded commit, although the branch moved
    servers.commits[("model", "org/gpt2", "main")] = COMMIT_B
    models.fetch_hub_model("org/gpt2", out, record, **kwargs)
    assert tiny_hub[-1]["revision"] == COMMIT_A and servers.api_hits() == 1
    # another pinned revision stops (the workflow checks this at start-up too) ...
    for call in (
        lambda: check_model_pin({"name": "org/gpt2", "revision": COMMIT_B}, record),
        lambda: models.fetch_hub_model("org/gpt2", out, record, revision=COMMIT_B, **kwargs),
    ):
        with pytest.raises(ChangedFileError) as info:
            call()
        assert COMMIT_A in str(info.value) and COMMIT_B in str(info.value)
    check_model_pin({"name": "org/gpt2", "revision": COMMIT_A}, record)
    with pytest.raises(ChangedFileError, match="hub model 'org/gpt2-large'"):
        check_model_pin({"name": "org/gpt2-large"}, record)
    # ... unless refreshed
    models.fetch_hub_model("org/gpt2", out, record, revision=COMMIT_B, refresh=True, **kwargs)
    assert json.loads(record.read_text())["commit"] == COMMIT_B


# --------------------------------------------------------------------------- rule scripts


def run_script(name: str, smk: SimpleNamespace) -> None:
    runpy.run_path(str(ROOT / "rules" / "scripts" / name), init_globals={"snakemake": smk})


def test_download_script_reads_pins_and_refresh_from_the_config_and_caches_under_resources(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home" / ".cache" / "huggingface"))
    monkeypatch.chdir(tmp_path)
    files = {}
    for split in ("train", "validation", "test"):
        files[split] = str(tmp_path / f"{split}.parquet")
        pd.DataFrame({"text": [f"{split} text"]}).to_parquet(files[split])
    hub = {"source": "hub", "name": "parquet", "data_files": files, "format": "plain"}
    url = webtext_spec(servers, BODIES)
    config = {
        "gpt2": {"datasets": {"wiki": hub, "web": {**url, "sha256": {"dev": sha(b"x")}}}},
        "refresh_downloads": [],
    }

    def smk(dataset: str, spec: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(
            params=SimpleNamespace(spec=content_spec(spec), hf_home="resources/huggingface"),
            output=SimpleNamespace(manifest=f"resources/datasets/{dataset}/manifest.json"),
            log=[f"resources/logs/{dataset}.log"],
            wildcards=SimpleNamespace(dataset=dataset),
            config=config,
        )

    run_script("gpt2_download.py", smk("wiki", hub))
    hf_home = tmp_path / "resources" / "huggingface"
    assert os.environ["HF_HOME"] == str(hf_home)
    assert any((hf_home / "datasets").iterdir())  # the datasets cache is under resources/
    assert not (tmp_path / "home").exists()
    # the pin comes from the config although the params leave it out
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        run_script("gpt2_download.py", smk("web", url))
    config["gpt2"]["datasets"]["web"] = url
    run_script("gpt2_download.py", smk("web", url))
    servers.add("/v1/webtext.test.jsonl", jsonl(["new"]))
    (tmp_path / "resources" / "datasets" / "web" / "webtext.test.jsonl").unlink()
    with pytest.raises(DownloadError, match="refresh"):
        run_script("gpt2_download.py", smk("web", url))
    config["refresh_downloads"] = ["web"]
    run_script("gpt2_download.py", smk("web", url))
    assert "refresh asked" in (tmp_path / "resources" / "logs" / "web.log").read_text()


def test_fetch_model_script_pins_from_config_and_caches_under_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_hub: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    looked_up: list[str | None] = []

    def commit(kind: str, name: str, revision: str | None = None, endpoint: Any = None) -> str:
        looked_up.append(revision)
        return COMMIT_A

    monkeypatch.setattr(download_module, "hub_commit", commit)
    config: dict[str, Any] = {
        "gpt2": {"models": {"small": {"source": "hub", "name": "org/gpt2", "revision": "v1"}}},
        "refresh_downloads": [],
    }
    smk = SimpleNamespace(
        params=SimpleNamespace(name="org/gpt2", hf_home="resources/huggingface"),
        output=["resources/models/small"],
        log=["resources/logs/fetch_model/small.log"],
        wildcards=SimpleNamespace(model="small"),
        config=config,
    )
    run_script("gpt2_fetch_model.py", smk)
    hf_home = tmp_path / "resources" / "huggingface"
    assert os.environ["HF_HOME"] == str(hf_home)
    assert tiny_hub[-1] == {"name": "org/gpt2", "revision": COMMIT_A, "cache_dir": hf_home / "hub"}
    assert looked_up == ["v1"]
    record = json.loads((tmp_path / "resources" / "models" / "small.record.json").read_text())
    assert record == {**record, "name": "org/gpt2", "revision": "v1", "commit": COMMIT_A}
    assert "commit " + COMMIT_A in (tmp_path / smk.log[0]).read_text()


# --------------------------------------------------------------------------- config


def test_config_accepts_pins_and_refresh() -> None:
    config = load_config(ROOT / "config.yaml")
    datasets = config["gpt2"]["datasets"]
    datasets["webtext"]["sha256"] = {"train": "0" * 64, "dev": None}
    datasets["webtext"]["size"] = {"train": 123, "test": None}
    datasets["wikitext"]["revision"] = COMMIT_A
    config["gpt2"]["models"]["small"]["revision"] = COMMIT_B
    config["refresh_downloads"] = ["webtext", "small"]
    validate_config(config)
    for bad in ({"train": -1}, {"train": "big"}):
        datasets["webtext"]["size"] = bad
        with pytest.raises(Exception, match="size"):
            validate_config(config)


def test_webtext_urls_use_the_current_host() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    urls = config["gpt2"]["datasets"]["webtext"]["urls"]
    host = "https://openaipublic.blob.core.windows.net/gpt-2/output-dataset/v1/"
    assert urls == {
        "train": host + "webtext.train.jsonl",
        "dev": host + "webtext.valid.jsonl",
        "test": host + "webtext.test.jsonl",
    }


def test_content_spec_and_pins_split_a_spec() -> None:
    spec = {"source": "url", "urls": {"a": "u"}, "sha256": {"a": "0" * 64}, "size": None}
    assert content_spec(spec) == {"source": "url", "urls": {"a": "u"}}
    assert pins_of(spec) == {"sha256": {"a": "0" * 64}}
