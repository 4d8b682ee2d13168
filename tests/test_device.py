"""Device choice (mixce.device): a job given a GPU never falls back to the CPU in silence.

No GPU here: torch.cuda and torch.version are faked with monkeypatch, one fake per cause
torch can give (a CPU-only build, a driver too old for the build's CUDA, no GPU visible, no
NVIDIA driver, no kernel for the GPU's architecture), and a fake working GPU.
"""

from __future__ import annotations

import logging
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import mixce.device
import mixce.gpt2.models
import mixce.synthetic.pipeline
from mixce.device import CudaUnusable, cuda_problem, has_kernel, job_gpus, resolve_device
from mixce.synthetic.settings import TrainConfig
from mixce.synthetic.train import train_device

ROOT = Path(__file__).resolve().parents[1]
#: torch.cuda.get_arch_list() of the CUDA 13.0 build of torch 2.13 (Linux x86_64)
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
#: ... and of its CUDA 12.6 build
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
#: what torch 2.13's CUDA 13.0 build says on a node whose driver supports CUDA 12.4 only
TOO_OLD = (
    "The NVIDIA driver on your system is too old (found version 12040). Please update your "
    "GPU driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to "
    "install a PyTorch version that has been compiled with your version of the CUDA driver."
)


def never(*args, **kwargs):
    raise AssertionError("torch.cuda was asked although the answer could not matter")


def fake_cpu_only(monkeypatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)


def fake_no_cuda(monkeypatch, said: str, warned: str | None = None, cuda: str = "13.0") -> None:
    """A CUDA build whose cudaGetDeviceCount fails: is_available() is False (after the
    warning torch emits), and init() raises with torch's reason."""
    monkeypatch.setattr(torch.version, "cuda", cuda)

    def is_available() -> bool:
        if warned:
            import warnings

            warnings.warn(f"CUDA initialization: {warned}", UserWarning, stacklevel=2)
        return False

    def init() -> None:
        raise RuntimeError(said)

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.cuda, "init", init)


def fake_gpu(monkeypatch, capability=(9, 0), arch_list=CU130, kernel=None) -> list[int]:
    """A CUDA 13.0 build that sees one GPU of ``capability``; ``kernel`` replaces the first
    kernel launch. Returns the list of GPU indices the first kernel ran on."""
    ran: list[int] = []
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch_list))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(mixce.device, "_first_kernel", kernel or ran.append)
    return ran


# --------------------------------------------------------------------------- the causes


def test_cpu_only_build_is_named_with_the_cuda_wheel_to_install(monkeypatch):
    fake_cpu_only(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", never)
    with pytest.raises(CudaUnusable) as error:
        resolve_device("auto", 1, key="gpt2.finetune.device", rule="finetune")
    text = str(error.value)
    assert "gpt2.finetune.device is auto and this job was given 1 GPU(s)" in text
    assert "cluster.rules.finetune.gpu" in text
    assert "CPU-only build" in text
    base = torch.__version__.split("+")[0]
    index = "https://download.pytorch.org/whl"
    assert f"pip install torch=={base}+cu130 --index-url {index}/cu130" in text
    assert "driver >= 580" in text
    assert "set gpt2.finetune.device: cpu and cluster.rules.finetune.gpu: 0" in text


def test_driver_too_old_names_the_driver_it_needs_and_the_older_build(monkeypatch):
    fake_no_cuda(monkeypatch, TOO_OLD, warned=TOO_OLD)
    with pytest.raises(CudaUnusable) as error:
        resolve_device("cuda", 1, key="gpt2.sampling.device", rule="sample")
    text = str(error.value)
    assert text.startswith("gpt2.sampling.device is cuda but torch sees no GPU it can use")
    assert "driver is too old for this torch's CUDA 13.0" in text
    assert "found version 12040" in text  # torch's own words
    assert "needs driver >= 580" in text
    assert "+cu126 --index-url https://download.pytorch.org/whl/cu126` (driver >= 525)" in text


def test_driver_too_old_is_recognised_from_the_warning_alone(monkeypatch):
    """torch warns once per process; init() may then raise a less telling error."""
    fake_no_cuda(monkeypatch, "No CUDA GPUs are available", warned=TOO_OLD)
    assert "driver is too old" in cuda_problem()


def test_no_gpu_visible_names_cuda_visible_devices(monkeypatch):
    fake_no_cuda(monkeypatch, "No CUDA GPUs are available")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    problem = cuda_problem()
    assert "no GPU is visible to this job (CUDA_VISIBLE_DEVICES='')" in problem
    assert "No CUDA GPUs are available" in problem


def test_no_driver_says_the_job_is_not_on_a_gpu_node(monkeypatch):
    fake_no_cuda(
        monkeypatch,
        "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and "
        "installed a driver from http://www.nvidia.com/Download/index.aspx",
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "no NVIDIA driver on this machine" in cuda_problem()


def test_no_kernel_for_the_gpu_architecture_names_a_build_that_has_one(monkeypatch):
    """A V100 (compute capability 7.0) with the CUDA 13.0 build (Turing and later only)."""
    ran = fake_gpu(monkeypatch, capability=(7, 0), arch_list=CU130)
    with pytest.raises(CudaUnusable, match="no kernel for this GPU") as error:
        resolve_device("auto", 1, key="gpt2.metrics.device", rule="perplexity")
    text = str(error.value)
    assert "compute capability 7.0" in text and "sm_75 sm_80" in text
    if hasattr(torch.cuda, "PYTORCH_RELEASES_CODE_CC"):  # torch's table of its builds
        assert "download.pytorch.org/whl/cu126" in text
        assert "whl/cu130" not in text
    assert ran == []  # stopped before touching the GPU


def test_a_missing_kernel_image_at_the_first_kernel_is_named(monkeypatch):
    def kernel(index: int) -> None:
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    fake_gpu(monkeypatch, capability=(9, 0), kernel=kernel)
    assert cuda_problem().startswith("no kernel for this GPU: GPU 0 (Fake GPU)")


def test_another_failure_of_the_first_kernel_is_reported_as_torch_gives_it(monkeypatch):
    def kernel(index: int) -> None:
        raise RuntimeError("CUDA error: uncorrectable ECC error encountered")

    fake_gpu(monkeypatch, kernel=kernel)
    assert "uncorrectable ECC error" in cuda_problem()


@pytest.mark.parametrize(
    ("capability", "arch_list", "expected"),
    [
        ((9, 0), CU130, True),  # H100 / H200
        ((8, 9), CU130, True),  # L4 / RTX 4090: the sm_86 cubin
        ((12, 1), CU130, True),  # sm_120 cubin, same major
        ((10, 3), CU130, True),  # B300: sm_100
        ((7, 0), CU130, False),  # V100
        ((12, 0), CU126, False),  # RTX 5090 with the CUDA 12.6 build
        ((12, 0), [*CU126, "compute_90"], True),  # PTX is compiled for later GPUs
        ((9, 0), ["sm_90a"], True),
        ((10, 0), ["sm_90a"], False),  # arch-specific code: that GPU only
        ((8, 0), ["gfx90a"], False),
    ],
)
def test_has_kernel(capability, arch_list, expected):
    assert has_kernel(capability, arch_list) is expected


# --------------------------------------------------------------------------- the choice


def test_a_working_gpu_is_chosen_for_auto_with_a_gpu_given_and_for_cuda(monkeypatch):
    ran = fake_gpu(monkeypatch)
    assert resolve_device("auto", 1) == torch.device("cuda")
    assert resolve_device("cuda", 0) == torch.device("cuda")
    assert resolve_device("cuda:0", None) == torch.device("cuda:0")
    assert resolve_device("auto", None) == torch.device("cuda")  # outside a workflow job
    assert ran == [0, 0, 0, 0]  # every choice ran a first kernel


def test_auto_without_a_gpu_given_is_the_cpu_without_asking_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", never)
    monkeypatch.setattr(mixce.device, "cuda_problem", never)
    assert resolve_device("auto", 0) == torch.device("cpu")
    assert TrainConfig(device="auto", gpus=0).uses_numpy()  # and the NumPy backend


def test_cpu_is_kept_when_a_gpu_was_given_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(mixce.device, "cuda_problem", never)
    with caplog.at_level(logging.WARNING, logger="mixce.device"):
        assert resolve_device("cpu", 1, key="synthetic.train.device") == torch.device("cpu")
    assert "leaves the GPU idle" in caplog.text


def test_auto_outside_a_workflow_job_uses_the_cpu_when_cuda_is_unusable(monkeypatch):
    fake_no_cuda(monkeypatch, TOO_OLD)
    assert resolve_device("auto") == torch.device("cpu")
    assert TrainConfig(device="auto").uses_numpy()


def test_a_gpu_given_to_synthetic_train_means_torch_on_cuda(monkeypatch):
    fake_no_cuda(monkeypatch, TOO_OLD)
    assert not TrainConfig(device="auto", gpus=1).uses_numpy()
    with pytest.raises(CudaUnusable, match="synthetic.train.device is auto and this job"):
        train_device("auto", 1)
    assert train_device("auto", 0) == torch.device("cpu")


def test_bad_device_setting_names_the_key():
    with pytest.raises(ValueError, match="gpt2.metrics.device must be auto, cpu, cuda"):
        resolve_device("gpu", 1, key="gpt2.metrics.device")


def test_job_gpus_reads_the_rules_gpu_resource():
    assert job_gpus(SimpleNamespace(resources=SimpleNamespace(gpu=2))) == 2
    assert job_gpus(SimpleNamespace(resources=SimpleNamespace(mem_mb=10))) == 0  # gpu: 0
    assert job_gpus(SimpleNamespace()) == 0
    with pytest.raises(ValueError, match="resource gpu of rule finetune is 'one'"):
        job_gpus(SimpleNamespace(rule="finetune", resources=SimpleNamespace(gpu="one")))


# --------------------------------------------------------------------------- the rule scripts

#: every script of a GPU rule, its rule and the device key it reads
GPU_SCRIPTS = [
    ("gpt2_train.py", "finetune", "gpt2.finetune.device"),
    ("gpt2_sample.py", "sample", "gpt2.sampling.device"),
    ("gpt2_perplexity.py", "perplexity", "gpt2.metrics.device"),
    ("gpt2_nll.py", "nll_figure2", "gpt2.metrics.device"),
    ("gpt2_score_human.py", "score_human", "gpt2.metrics.device"),
    ("gpt2_score_samples.py", "score_samples", "gpt2.metrics.device"),
    ("gpt2_controlled.py", "controlled", "gpt2.metrics.device"),
    ("synthetic_train.py", "synthetic_train", "synthetic.train.device"),
]


@pytest.fixture
def torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("script", "rule", "key"), GPU_SCRIPTS)
def test_a_job_given_a_gpu_without_usable_cuda_stops_before_loading_anything(
    tmp_path, monkeypatch, torch_threads, script, rule, key
):
    """The script as Snakemake runs it: a GPU given (resources.gpu = 1), device auto, and a
    driver too old for torch's CUDA. It stops at its device line with the reason in its log;
    its inputs do not exist and every loader is replaced by a tripwire, so any work done
    before the device check would fail otherwise."""
    fake_no_cuda(monkeypatch, TOO_OLD, warned=TOO_OLD)
    monkeypatch.setattr(mixce.gpt2.models, "load_model", never)
    monkeypatch.setattr(mixce.synthetic.pipeline, "train_seeds", never)
    missing = str(tmp_path / "missing")
    log = tmp_path / "job.log"
    params = {"device": "auto", "train": {"device": "auto", "estimator": "exact"}}
    smk = SimpleNamespace(
        rule=rule,
        resources=SimpleNamespace(gpu=1, mem_mb=1000, runtime=10),
        params=SimpleNamespace(**params),
        input=SimpleNamespace(model=missing, tokenizer=missing, texts=missing),
        output=SimpleNamespace(),
        threads=1,
        log=[str(log)],
    )
    monkeypatch.setattr(sys, "argv", [script])
    with pytest.raises(CudaUnusable) as error:
        runpy.run_path(str(ROOT / "rules" / "scripts" / script), init_globals={"snakemake": smk})
    text = str(error.value)
    assert text.startswith(f"{key} is auto and this job was given 1 GPU(s)")
    assert f"cluster.rules.{rule}.gpu" in text and "driver is too old" in text
    assert "driver is too old" in log.read_text()  # the job's log says why
