"""bench/gpu_check.py (`make gpu-check`) on the CPU at tiny shapes, so it cannot rot before a
GPU is lent, and docs/cluster_plan.py's use of its results.

The tiny run goes through a subprocess whose ``__import__`` refuses, for imports made by
bench/gpu_check.py or src/mixce, any package outside the lent GPU machine's python3 (torch,
transformers, numpy, pandas, scipy, tqdm and the standard library): the check must run there
as ``PYTHONPATH=src python3 bench/gpu_check.py`` with nothing installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench/gpu_check.py"
#: what the lent GPU machine's python3 has besides the standard library (all the check may use)
ALLOWED = {"torch", "transformers", "numpy", "pandas", "scipy", "tqdm"}

# Runs bench/gpu_check.py with an __import__ that refuses (and records) every import of a
# package outside ALLOWED made by the script or by src/mixce; third-party packages' own
# imports are theirs. Wrapping __import__ sees every import statement, also of a module
# already loaded by some other package.
BLOCKER = r"""
import builtins, json, os, runpy, sys
repo, allowed, record = sys.argv[1], set(sys.argv[2].split(",")), sys.argv[3]
ours = (os.path.join(repo, "src", "mixce") + os.sep, os.path.join(repo, "bench") + os.sep)
allowed |= set(sys.stdlib_module_names) | {"mixce"}
refused = []
real_import = builtins.__import__

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    where = (globals or {}).get("__file__") or ""
    top = name.partition(".")[0]
    if level == 0 and where.startswith(ours) and top not in allowed:
        refused.append(f"{name} (imported by {where})")
        raise ModuleNotFoundError(f"No module named {name!r} on the GPU machine", name=name)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded
sys.argv = [os.path.join(repo, "bench", "gpu_check.py"), *sys.argv[4:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(record, "w") as handle:
        json.dump(refused, handle)
"""


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = load("gpu_check", SCRIPT)
cluster_plan = load("cluster_plan", REPO / "docs/cluster_plan.py")


def run_guarded(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    record = tmp / "refused.json"
    cmd = [sys.executable, "-c", BLOCKER, str(REPO), ",".join(sorted(ALLOWED)), str(record)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as bare as the device
    proc = subprocess.run(
        [*cmd, *args], cwd=tmp, capture_output=True, text=True, timeout=300, env=env
    )
    refused = json.loads(record.read_text()) if record.is_file() else ["(no record written)"]
    return proc, refused


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict, list[str], float]:
    """(the JSON of a --tiny run on the CPU, the imports refused, its wall seconds)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "gpu.json"
    tic = time.perf_counter()
    proc, refused = run_guarded(tmp, "--tiny", "--device", "cpu", "--out", str(out))
    seconds = time.perf_counter() - tic
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), refused, seconds


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_tiny_run_imports_only_what_the_gpu_machine_has(tiny) -> None:
    _, refused, _ = tiny
    assert refused == []


def test_script_imports_nothing_else_in_any_branch() -> None:
    """Also the imports of branches the CPU run does not take (CUDA-only code)."""
    tree = ast.parse(SCRIPT.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.partition(".")[0])
    outside = names - ALLOWED - set(sys.stdlib_module_names) - {"mixce"}
    assert outside == set()


def test_tiny_run_measures_every_section_with_the_projects_code(tiny) -> None:
    result, _, _ = tiny  # no time limit here: speed lives in the bench, not in tests
    assert result["tiny"] is True and result["device"]["type"] == "cpu"
    assert set(result["sections"]) == set(gpu_check.SECTIONS)
    for name, record in result["sections"].items():
        assert record["status"] == "ok", (name, record.get("error"), record.get("traceback"))
        assert positive(record["peak_memory_mb"]), name
    # the real code: training loop, objectives, sampler, featurizer, synthetic training
    for module in (
        "mixce.gpt2.train",
        "mixce.objectives",
        "mixce.gpt2.sample",
        "mixce.gpt2.metrics.features",
        "mixce.synthetic.train",
        "mixce.synthetic.exact",
    ):
        assert module in result["mixce_modules"]


def test_tiny_run_figures_are_positive(tiny) -> None:
    result, _, _ = tiny
    sections = result["sections"]
    finetune = sections["finetune"]["runs"]
    assert {(r["model"], r["precision"], r["objective"]) for r in finetune} == {
        (m, p, o)
        for m in ("small", "large")
        for p in ("clean", "official")
        for o in ("mle", "mixce")
    }
    for run in finetune:
        for key in ("step_seconds_median", "tokens_per_s", "model_flops_per_s", "parameters"):
            assert positive(run[key]), (key, run)
        assert run["mfu"] is None  # no datasheet peak for a CPU
        assert len(run["step_seconds"]) == run["timed_steps"]
    assert run["train_precision"] == "float32"  # official
    assert len(sections["finetune"]["mixce_over_mle"]) == 4
    assert all(positive(r) for r in sections["finetune"]["mixce_over_mle"].values())
    sample = sections["sample"]["runs"]
    assert {(r["model"], r["precision"]) for r in sample} == {
        (m, p) for m in ("small", "large") for p in ("clean", "official")
    }
    for run in sample:
        assert run["head_logits_dtype_under_bf16_autocast"] == "float32"
        for side in ("ours", "transformers"):
            assert positive(run[side]["tokens_per_s"]) and positive(run[side]["generated_tokens"])
        assert positive(run["ours_over_transformers"])
    (feature,) = sections["featurize"]["runs"]
    assert positive(feature["texts_per_s"]) and positive(feature["tokens_per_s"])
    synthetic = sections["synthetic"]["runs"]
    assert {r["backend"] for r in synthetic} == {"torch", "numpy"}
    assert all(positive(r["seconds_per_step"]) and r["steps"] > 0 for r in synthetic)
    assert set(sections["synthetic"]["device_over_numpy_cpu"]) == {"forward_kl", "mixce"}
    for run in sections["matmul"]["runs"]:
        assert positive(run["flops_per_s"])
    kinds = {(r["kind"], r["model"], r["precision"]) for r in result["rates"]}
    assert ("train", "large", "official") in kinds and ("decode", "small", "clean") in kinds
    assert ("forward", "large", "any") in kinds
    assert all(positive(r["tokens_per_s"]) for r in result["rates"])


def test_a_failing_section_is_recorded_and_the_others_run(tmp_path, monkeypatch) -> None:
    def broken(ctx, clock, record) -> None:
        record["runs"] = ["measured before the failure"]
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(gpu_check.SECTION_FNS, "sample", broken)
    out = tmp_path / "gpu.json"
    threads = str(gpu_check.torch.get_num_threads())
    argv = ["--tiny", "--sections", "sample,matmul", "--out", str(out), "--threads", threads]
    assert gpu_check.main(argv) == 1
    sections = json.loads(out.read_text())["sections"]
    assert sections["sample"]["status"] == "error"
    assert "illegal memory access" in sections["sample"]["error"]
    assert "RuntimeError" in sections["sample"]["traceback"]
    assert sections["sample"]["runs"] == ["measured before the failure"]
    assert sections["matmul"]["status"] == "ok"


def test_a_section_past_its_budget_is_stopped_and_keeps_what_it_measured() -> None:
    ctx = gpu_check.Context(gpu_check.torch.device("cpu"), tiny=True, seed=0)

    def slow(ctx, clock, record) -> None:
        record["runs"] = ["first run"]
        assert clock.fits(0.1) and not clock.fits(5.0)
        time.sleep(10)

    tic = time.perf_counter()
    record = gpu_check.run_section("slow", slow, ctx, budget_s=1.0, stop_s=1.5)
    assert time.perf_counter() - tic < 5
    assert record["status"] == "timeout" and record["runs"] == ["first run"]
    assert gpu_check.run_section("late", slow, ctx, budget_s=0.5)["status"] == "skipped"


def test_datasheet_peaks_by_device_name() -> None:
    peaks = gpu_check.datasheet_peaks
    assert peaks("NVIDIA H200")["half"] == peaks("NVIDIA H100 80GB HBM3")["half"] == 989e12
    assert peaks("NVIDIA H100 PCIe")["half"] < peaks("NVIDIA H100 NVL")["half"] < 989e12
    assert peaks("NVIDIA A100-SXM4-80GB")["half"] == 312e12
    assert peaks("Tesla V100-SXM2-32GB")["half_dtype"] == "fp16"
    assert peaks("NVIDIA L40S")["half"] > peaks("NVIDIA L40")["half"] > peaks("NVIDIA L4")["half"]
    assert peaks("NVIDIA A10G")["half"] is None  # not the A10: unknown, no MFU
    assert peaks("NVIDIA GeForce RTX 4090")["float32"] is None


def test_the_script_refuses_cuda_it_cannot_see(tmp_path) -> None:
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    assert gpu_check.main(["--out", str(tmp_path / "gpu.json")]) == 2
    assert not (tmp_path / "gpu.json").exists()


# --------------------------------------------------------------------------- cluster plan


def gpu_json(path: Path, device_type: str = "cuda", tiny: bool = False) -> Path:
    rows = [
        {"kind": "decode", "model": m, "precision": p, "parameters": n, "tokens_per_s": t}
        for m, n in (("small", 124e6), ("large", 774e6))
        for p, t in (("official", 2000.0), ("clean", 8000.0))
    ] + [
        {
            "kind": "forward",
            "model": "large",
            "precision": "any",
            "parameters": 774e6,
            "tokens_per_s": 5e4,
        }
    ]
    data = {
        "device": {"type": device_type, "name": "NVIDIA H200"},
        "tiny": tiny,
        "started_at": "2026-12-01T10:00:00+00:00",
        "rates": rows,
    }
    path.write_text(json.dumps(data))
    return path


def test_cluster_plan_reads_only_full_size_cuda_results(tmp_path) -> None:
    read = cluster_plan.measured_rates
    assert read(tmp_path / "absent.json", "official") is None
    assert read(gpu_json(tmp_path / "cpu.json", device_type="cpu"), "official") is None
    assert read(gpu_json(tmp_path / "tiny.json", tiny=True), "official") is None
    measured = read(gpu_json(tmp_path / "gpu.json"), "official")
    assert set(measured["rates"]) == {"decode", "forward"}  # training not measured
    # the official rows only, as FLOP/s (2 per parameter and token), sorted by size
    assert measured["rates"]["decode"] == [(124e6, 2 * 124e6 * 2000), (774e6, 2 * 774e6 * 2000)]
    clean = read(gpu_json(tmp_path / "gpu.json"), "clean")
    assert clean["rates"]["decode"][0] == (124e6, 2 * 124e6 * 8000)
    assert clean["rates"]["forward"] == measured["rates"]["forward"]  # "any" precision


def test_cluster_plan_interpolates_log_log_between_sizes() -> None:
    rows = [(100e6, 1e12), (800e6, 8e12)]
    rate = cluster_plan.rate_at
    assert rate(rows, 100e6) == 1e12 and rate(rows, 800e6) == pytest.approx(8e12)
    assert rate(rows, math.sqrt(100e6 * 800e6)) == pytest.approx(math.sqrt(1e12 * 8e12))
    assert rate(rows, 10e6) == 1e12 and rate(rows, 2e9) == 8e12  # the nearest outside


def test_cluster_plan_block_uses_measured_rates(tmp_path) -> None:
    from mixce.config import load_config

    config = load_config([REPO / "config.yaml"])
    job = {
        "rule": "sample",
        "wildcards": {"model": "large", "split": "test", "dataset": "webtext"},
        "resources": {"gpu": "1", "runtime": "90", "mem_mb": "24000"},
    }
    measured = cluster_plan.markdown([job], config, gpu_json(tmp_path / "gpu.json"))
    assumed = cluster_plan.markdown([job], config, tmp_path / "absent.json")
    # work over rate: 2 x parameters x prompts x (prompt + new tokens) / (2 x 774e6 x tokens/s)
    kind, flops = cluster_plan.job_flops(job, config)
    precision = cluster_plan.point(config, "precision")
    tokens_per_s = 2000.0 if precision == "official" else 8000.0
    hours = flops / (2 * 774e6 * tokens_per_s) / 3600
    assert kind == "decode"
    assert f"| sampling (`sample`) | 1 | {cluster_plan.hours_str(hours)} |" in measured
    assert "MEASURED on one NVIDIA H200" in measured and "2026-12-01" in measured
    assert "Training: not measured, so ASSUMED" in measured
    assert "no GPU measurement" in assumed and "MEASURED" not in assumed
    assumed_hours = flops / cluster_plan.GPU_RATE["decode"] / 3600
    assert f"| sampling (`sample`) | 1 | {cluster_plan.hours_str(assumed_hours)} |" in assumed
