"""Where a job runs: one device rule for every GPU-capable script, no silent CPU fallback.

A job is given a GPU when its rule's ``gpu`` resource (``cluster.rules.<rule>.gpu``) is >= 1.
The device settings (``gpt2.{finetune,sampling,metrics}.device``, ``synthetic.train.device``):
``cpu`` (a warning when given a GPU); ``cuda``/``cuda:N``, stopping at once when torch cannot
use it; ``auto``: the GPU given (stopping without a working one), else the CPU; outside a
workflow job (``gpus=None``) CUDA when usable. :class:`CudaUnusable` names torch's cause and
what to install, before any model is loaded. torch is imported only when a device is resolved.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: minimum NVIDIA driver (Linux) of each CUDA major version under NVIDIA's minor version
#: compatibility (docs.nvidia.com/deploy/cuda-compatibility: 13.x >= 580, 12.x >= 525)
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
#: PyTorch's wheel index; a build for CUDA X.Y is at <WHEEL_INDEX>/cuXY
WHEEL_INDEX = "https://download.pytorch.org/whl"
#: the CUDA of the Linux x86_64 torch wheel on PyPI that requirements.lock pins (2.13.0)
DEFAULT_CUDA = "13.0"
#: the build to suggest for old drivers and pre-Turing GPUs (torch 2.13's legacy CUDA)
LEGACY_CUDA = "12.6"


class CudaUnusable(RuntimeError):
    """A job needs CUDA and torch cannot use it; the message says why and what to install."""


def job_gpus(smk: Any) -> int:
    """GPUs given to this Snakemake job: its rule's ``gpu`` resource (0 when it has none)."""
    value = getattr(getattr(smk, "resources", None), "gpu", 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise ValueError(
            f"resource gpu of rule {getattr(smk, 'rule', '?')} is {value!r}, not a number"
        ) from None


def job_device(smk: Any, key: str) -> torch.device:
    """:func:`resolve_device` of ``params.device`` (config ``key``); call it first thing."""
    return resolve_device(
        smk.params.device, job_gpus(smk), key=key, rule=getattr(smk, "rule", None)
    )


def resolve_device(
    device: str, gpus: int | None = None, *, key: str = "device", rule: str | None = None
) -> torch.device:
    """The torch device of setting ``device`` (config ``key``) for a job given ``gpus`` GPUs."""
    import torch

    name = str(device)
    if name not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", name):
        raise ValueError(f"{key} must be auto, cpu, cuda or cuda:<index>, got {device!r}")
    given = f"cluster.rules.{rule}.gpu" if rule else "cluster.rules.<rule>.gpu"
    if name == "cpu":
        if gpus:
            logger.warning(
                f"{key} is cpu although this job was given {gpus} GPU(s) ({given}): it runs on "
                "the CPU and leaves the GPU idle"
            )
        return torch.device("cpu")
    if name == "auto" and gpus is None:  # not a workflow job: the GPU when it works
        problem = cuda_problem()
        if problem is not None:
            logger.info("%s is auto: CPU, since %s", key, problem)
            return torch.device("cpu")
        return _chosen(torch.device("cuda"))
    if name == "auto" and gpus <= 0:
        return torch.device("cpu")
    target = torch.device("cuda" if name == "auto" else name)
    problem = cuda_problem(target.index or 0)
    if problem is not None:
        if name == "auto":
            why = (
                f"{key} is auto and this job was given {gpus} GPU(s) ({given}), "
                "but torch cannot use CUDA"
            )
            cpu = f"set {key}: cpu and {given}: 0"
        else:
            why = f"{key} is {name} but torch sees no GPU it can use"
            cpu = f"set {key}: cpu (and {given}: 0)"
        raise CudaUnusable(
            f"{why}: {problem}\nTo run this job on the CPU instead, {cpu}. "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    return _chosen(target)


def _chosen(device: torch.device) -> torch.device:
    import torch

    index = device.index or 0
    major, minor = torch.cuda.get_device_capability(index)
    name = torch.cuda.get_device_name(index)
    logger.info(
        f"device {device}: {name} (compute capability {major}.{minor}; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda})"
    )
    return device


def cuda_problem(index: int = 0) -> str | None:
    """Why torch cannot use CUDA device ``index`` here, with what to install; None when it can."""
    import torch

    version = torch.__version__
    base = version.split("+")[0]
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return (
            f"this torch ({version}) is a CPU-only build. Install a CUDA build of the same "
            f"version: {_pip(base, DEFAULT_CUDA)} (NVIDIA driver >= "
            f"{_min_driver(DEFAULT_CUDA)}), or {_pip(base, LEGACY_CUDA)} for drivers >= "
            f"{_min_driver(LEGACY_CUDA)} and GPUs older than Turing."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if not available:
        warned = " ".join(str(w.message) for w in caught)  # e.g. "... driver ... too old"
        said = ""
        try:
            torch.cuda.init()  # raises with the reason cudaGetDeviceCount gave
        except Exception as error:  # noqa: BLE001 - any failure is the diagnosis
            said = str(error)
        return _no_cuda(said or warned, f"{said} {warned}".lower(), version)
    count = torch.cuda.device_count()
    if index >= count:
        return f"cuda:{index} asked for, but torch sees {count} GPU(s) here."
    capability = tuple(torch.cuda.get_device_capability(index))
    arch_list = list(torch.cuda.get_arch_list())
    # (a ROCm build lists gfx targets: its first kernel below is the only check)
    if torch.version.cuda is not None and arch_list and not has_kernel(capability, arch_list):
        return _no_kernel(index, capability, arch_list, version, base)
    try:
        _first_kernel(index)
    except RuntimeError as error:
        if "no kernel image" in str(error):
            return _no_kernel(index, capability, arch_list, version, base)
        return f"a first CUDA operation on GPU {index} failed: {error}"
    return None


def has_kernel(capability: Sequence[int], arch_list: Sequence[str]) -> bool:
    """Whether a build for ``arch_list`` runs on a GPU of ``capability``: an sm_XY cubin runs
    on major X at minor >= Y, compute_XY PTX on X.Y and any later version."""
    device = (int(capability[0]), int(capability[1]))
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch)
        if match is None:
            continue
        kind, major, minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if suffix == "a":  # architecture-specific code: this exact GPU only
            ok = device == (major, minor)
        elif kind == "sm":
            ok = device[0] == major and device[1] >= minor
        else:
            ok = device >= (major, minor)
        if ok:
            return True
    return False


def _first_kernel(index: int) -> None:
    """One small kernel on GPU ``index`` (a missing kernel image shows up only here)."""
    import torch

    x = torch.ones(4, device=f"cuda:{index}")
    if float((x + 1).sum().item()) != 8.0:
        raise RuntimeError(f"a test sum on cuda:{index} came out wrong")


def _no_cuda(said: str, everything: str, version: str) -> str:
    """Why CUDA is unavailable, from what torch ``said`` (``everything``: all, lower case)."""
    import torch

    cuda, said = str(torch.version.cuda), said.strip()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if "too old" in everything:
        return (
            f"the NVIDIA driver is too old for this torch's CUDA {cuda} (torch says: {said}) "
            f"CUDA {cuda.split('.')[0]}.x needs driver >= {_min_driver(cuda)}. Ask for a newer "
            "driver on the GPU nodes, or install a torch build for an older CUDA: "
            f"{_pip(version.split('+')[0], LEGACY_CUDA)} (driver >= {_min_driver(LEGACY_CUDA)})."
        )
    if "no nvidia driver" in everything:
        return (
            f"no NVIDIA driver on this machine (torch says: {said}). The job did not run on a "
            "GPU node, or the node lacks the driver: check the GPU partition in slurm/site.yaml "
            "and `nvidia-smi` on the node."
        )
    said = said or "no CUDA device"
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return (
            f"no GPU is visible to this job (CUDA_VISIBLE_DEVICES={visible!r}): the scheduler "
            "gave it none; check that the job asked for one (sbatch --gpus) and got it "
            f"(sacct ... AllocTRES). torch says: {said}"
        )
    return (
        f"torch {version} (CUDA {cuda}) finds no usable GPU (torch says: {said}). Check "
        f"`nvidia-smi` on the node; its driver must be >= {_min_driver(cuda)} for CUDA {cuda}."
    )


def _no_kernel(
    index: int, capability: Sequence[int], arch_list: Sequence[str], version: str, base: str
) -> str:
    import torch

    # the CUDA builds of this release and the compute capabilities each has kernels for
    # (a table torch keeps for its own warning; absent in other versions: then no list)
    host = "aarch64" if platform.machine().lower() == "aarch64" else "x86_64"
    builds = [
        cuda
        for cuda, by_host in getattr(torch.cuda, "PYTORCH_RELEASES_CODE_CC", {}).items()
        if has_kernel(capability, [f"sm_{cc}" for cc in by_host.get(host, ())])
    ]
    fix = (
        "install a build that has: " + "; ".join(_pip(base, cuda) for cuda in builds)
        if builds
        else "no published torch build of this release has them: see "
        "https://pytorch.org/get-started/locally/"
    )
    return (
        f"no kernel for this GPU: GPU {index} ({torch.cuda.get_device_name(index)}) has compute "
        f"capability {capability[0]}.{capability[1]}, and this torch ({version}, CUDA "
        f"{torch.version.cuda}) has kernels for {' '.join(arch_list)} only; {fix}."
    )


def _pip(base: str, cuda: str) -> str:
    """pip command for torch ``base`` built for ``cuda`` (+cuXY: plain ==base keeps a build)."""
    tag = "cu" + cuda.replace(".", "")
    return f"`pip install torch=={base}+{tag} --index-url {WHEEL_INDEX}/{tag}`"


def _min_driver(cuda: str) -> str:
    major = int(cuda.split(".")[0]) if cuda and cuda[0].isdigit() else 0
    return str(MIN_DRIVER[major]) if major in MIN_DRIVER else "(see NVIDIA's CUDA release notes)"
