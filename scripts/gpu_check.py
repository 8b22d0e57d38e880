"""Say whether TensorFlow sees a GPU here and, when it does not, why.

    python -m scripts.gpu_check          # GPU image: docker compose -f docker-compose.yml -f docker-compose.gpu.yml run --rm gpu-check

Prints what it probed (NVIDIA_VISIBLE_DEVICES, /dev/nvidia*, nvidia-smi, the driver's
libcuda.so.1 and what CUDA reports through it, TensorFlow's CUDA libraries and the GPUs
TensorFlow lists), then a verdict. Exit status 0 when TensorFlow lists a GPU; 1 when it
lists none, with the likely cause and its fix (TensorFlow then runs on the CPU).
Needs only the standard library and TensorFlow.
"""

import argparse
import ctypes
import dataclasses
import glob
import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path

# The pip wheels that tensorflow[and-cuda] adds: TensorFlow loads CUDA and cuDNN from them.
CUDA_WHEELS = (
    "nvidia-cublas-cu12",
    "nvidia-cuda-cupti-cu12",
    "nvidia-cuda-nvcc-cu12",
    "nvidia-cuda-nvrtc-cu12",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu12",
    "nvidia-cufft-cu12",
    "nvidia-curand-cu12",
    "nvidia-cusolver-cu12",
    "nvidia-cusparse-cu12",
    "nvidia-nccl-cu12",
    "nvidia-nvjitlink-cu12",
)
# CUresult codes with a cause of their own (cuda.h).
CUDA_ERROR_INSUFFICIENT_DRIVER = 35
CUDA_ERROR_NO_DEVICE = 100
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
# TensorFlow 2.21's CUDA build is for CUDA 12 (a driver >= 525) and compute capability >= 6.0.
MIN_DRIVER_CUDA = 12000
MIN_COMPUTE_CAPABILITY = (6, 0)
GPU_START_HINT = "docker run --gpus all ... (compose: add -f docker-compose.gpu.yml, whose device reservation asks for the GPUs; GPU_COUNT=1 asks for one)"


@dataclasses.dataclass(frozen=True)
class Libcuda:
    """What the NVIDIA driver's CUDA library says (all None when it does not load)."""

    load_error: str | None = None  # None: it loaded
    driver_cuda_version: int | None = None  # 1000 * major + 10 * minor, from cuDriverGetVersion
    init_code: int | None = None  # cuInit's CUresult (0: success)
    init_error: str | None = None  # its name, e.g. CUDA_ERROR_NO_DEVICE
    device_count: int | None = None
    compute_capabilities: tuple[tuple[int, int], ...] = ()

    @property
    def loaded(self) -> bool:
        return self.load_error is None


@dataclasses.dataclass(frozen=True)
class Probes:
    in_container: bool
    nvidia_visible_devices: str | None  # None: unset
    cuda_visible_devices: str | None
    driver_capabilities: str | None  # NVIDIA_DRIVER_CAPABILITIES
    device_nodes: tuple[str, ...]  # /dev/nvidia0, /dev/nvidiactl, ...
    nvidia_smi: str | None  # its path, None: not on PATH
    libcuda: Libcuda
    missing_cuda_wheels: tuple[str, ...]
    tensorflow_version: str | None  # None: TensorFlow does not import
    tensorflow_error: str | None
    tensorflow_cuda_build: bool
    tensorflow_cuda_version: str | None
    tensorflow_gpus: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    has_gpu: bool
    causes: tuple[str, ...]  # empty when has_gpu


def _cuda_version_text(version: int | None) -> str:
    return "unknown" if version is None else f"{version // 1000}.{version % 1000 // 10}"


def _hides_all(value: str | None, hiding: tuple[str, ...]) -> bool:
    return value is not None and value.strip().lower() in hiding


def _device_causes(probes: Probes) -> list[str]:
    """Why CUDA has no device to give TensorFlow, most specific first."""
    libcuda = probes.libcuda
    causes = []
    if _hides_all(probes.nvidia_visible_devices, ("", "void", "none")):
        causes.append(
            f"NVIDIA_VISIBLE_DEVICES={probes.nvidia_visible_devices!r} asks the NVIDIA container runtime for no GPU: "
            "set it to 'all' or to GPU indices (e.g. NVIDIA_VISIBLE_DEVICES=0)."
        )
    if _hides_all(probes.cuda_visible_devices, ("", "-1")):
        causes.append(f"CUDA_VISIBLE_DEVICES={probes.cuda_visible_devices!r} hides every GPU from CUDA: unset it or list GPU indices.")
    if not probes.device_nodes and not libcuda.loaded:
        if probes.in_container:
            causes.append(
                "the container was given no GPU: it has no /dev/nvidia* device and no NVIDIA driver library (libcuda.so.1)"
                + ("" if probes.nvidia_smi else " nor nvidia-smi")
                + f". Start it with {GPU_START_HINT}. "
                "A host without the NVIDIA driver or the NVIDIA Container Toolkit cannot do that: Docker then refuses to start the container "
                "(e.g. 'could not select device driver \"nvidia\" with capabilities: [[gpu]]'); check the host with `nvidia-smi`."
            )
        else:
            causes.append(
                "this machine shows no NVIDIA GPU: no /dev/nvidia* device and no NVIDIA driver library (libcuda.so.1). "
                "Install the NVIDIA driver (>= 525, for CUDA 12); `nvidia-smi` should then list the GPU."
            )
        return causes
    if not libcuda.loaded:
        if probes.in_container:
            capabilities = probes.driver_capabilities if probes.driver_capabilities is not None else "(unset)"
            causes.append(
                f"GPU devices are present ({', '.join(probes.device_nodes)}) but the NVIDIA driver library is not: {libcuda.load_error}. "
                f"Either the devices were passed by hand (--device) instead of with {GPU_START_HINT}, "
                f"or NVIDIA_DRIVER_CAPABILITIES={capabilities} lacks 'compute'."
            )
        else:
            causes.append(
                f"the NVIDIA kernel driver is loaded ({', '.join(probes.device_nodes)}) but its CUDA library libcuda.so.1 does not load: "
                f"{libcuda.load_error}. Install the driver's user-space part (e.g. Debian/Ubuntu libnvidia-compute-<version>), "
                "the same version as the kernel module."
            )
        return causes
    driver = _cuda_version_text(libcuda.driver_cuda_version)
    if libcuda.init_code == CUDA_ERROR_INSUFFICIENT_DRIVER or (libcuda.driver_cuda_version is not None and libcuda.driver_cuda_version < MIN_DRIVER_CUDA):
        causes.append(
            f"the NVIDIA driver supports CUDA up to {driver}; TensorFlow's CUDA build needs CUDA 12 (driver >= 525, better >= 550): update the host's driver."
        )
    elif libcuda.init_code == CUDA_ERROR_NO_DEVICE or (libcuda.init_code == 0 and libcuda.device_count == 0):
        causes.append(
            "the NVIDIA driver library loads but CUDA finds no device"
            + (" (no /dev/nvidia* device here)" if not probes.device_nodes else "")
            + f": the GPUs were not given to this process. Start the container with {GPU_START_HINT}; on the host, `nvidia-smi` lists the GPUs."
        )
    elif libcuda.init_code:
        causes.append(
            f"cuInit failed with {libcuda.init_error or 'an unknown error'} ({libcuda.init_code}), driver CUDA {driver}. "
            "Often the driver library and the loaded kernel module differ (a driver update without a reboot); `nvidia-smi` on the host says more."
        )
    elif libcuda.compute_capabilities and all(capability < MIN_COMPUTE_CAPABILITY for capability in libcuda.compute_capabilities):
        found = ", ".join(f"{major}.{minor}" for major, minor in libcuda.compute_capabilities)
        causes.append(
            f"CUDA sees {libcuda.device_count} GPU(s) of compute capability {found}; TensorFlow's CUDA build needs at least "
            f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]}."
        )
    return causes


def _missing_text(missing: tuple[str, ...]) -> str:
    if len(missing) == len(CUDA_WHEELS):
        return f"none of the {len(CUDA_WHEELS)} nvidia-*-cu12 wheels of tensorflow[and-cuda]"
    return "missing: " + ", ".join(missing)


def diagnose(probes: Probes) -> Diagnosis:
    """The verdict from the probes: a GPU, or every cause found for having none."""
    if probes.tensorflow_gpus:
        return Diagnosis(True, ())
    causes = []
    if probes.tensorflow_version is None:
        causes.append(f"TensorFlow does not import: {probes.tensorflow_error}")
    elif not probes.tensorflow_cuda_build:
        causes.append(f"this TensorFlow {probes.tensorflow_version} is built without CUDA: install tensorflow[and-cuda] (the GPU image has it).")
    if probes.missing_cuda_wheels:
        causes.append(
            f"TensorFlow's CUDA libraries are not installed ({_missing_text(probes.missing_cuda_wheels)}): this is the CPU image or a plain install. "
            'Use the GPU image (Dockerfile.gpu, docker-compose.gpu.yml) or pip install "tensorflow[and-cuda]==2.21.0".'
        )
    causes += _device_causes(probes)
    if not causes:
        libcuda = probes.libcuda
        causes.append(
            f"CUDA sees {libcuda.device_count} GPU(s) (driver CUDA {_cuda_version_text(libcuda.driver_cuda_version)}) but TensorFlow lists none: "
            "it could not load a CUDA library or does not support this GPU. Run again with TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's reason."
        )
    return Diagnosis(False, tuple(causes))


def report(probes: Probes, diagnosis: Diagnosis) -> str:
    libcuda = probes.libcuda
    if not libcuda.loaded:
        cuda = f"does not load ({libcuda.load_error})"
    else:
        init = "ok" if libcuda.init_code == 0 else f"{libcuda.init_error or 'error'} ({libcuda.init_code})"
        capabilities = ", ".join(f"{major}.{minor}" for major, minor in libcuda.compute_capabilities)
        cuda = f"loads; driver CUDA {_cuda_version_text(libcuda.driver_cuda_version)}, cuInit {init}, {libcuda.device_count if libcuda.device_count is not None else '?'} device(s)"
        cuda += f" (compute capability {capabilities})" if capabilities else ""
    if probes.tensorflow_version is None:
        tensorflow = "does not import"
    else:
        tensorflow = f"{probes.tensorflow_version}, " + (
            f"CUDA {probes.tensorflow_cuda_version} build" if probes.tensorflow_cuda_build else "built without CUDA"
        )
    unset = "(unset)"
    rows = [
        ("running in a container", "yes" if probes.in_container else "no"),
        ("NVIDIA_VISIBLE_DEVICES", unset if probes.nvidia_visible_devices is None else repr(probes.nvidia_visible_devices)),
        ("CUDA_VISIBLE_DEVICES", unset if probes.cuda_visible_devices is None else repr(probes.cuda_visible_devices)),
        ("/dev/nvidia*", ", ".join(probes.device_nodes) or "none"),
        ("nvidia-smi", probes.nvidia_smi or "not on PATH"),
        ("libcuda.so.1", cuda),
        ("tensorflow[and-cuda] wheels", f"missing {len(probes.missing_cuda_wheels)} of {len(CUDA_WHEELS)}" if probes.missing_cuda_wheels else "installed"),
        ("TensorFlow", tensorflow),
        ("GPUs TensorFlow lists", ", ".join(probes.tensorflow_gpus) or "none"),
    ]
    lines = [f"  {name:<28} {value}" for name, value in rows]
    if diagnosis.has_gpu:
        lines.append(f"gpu_check: OK, TensorFlow sees {len(probes.tensorflow_gpus)} GPU(s): {', '.join(probes.tensorflow_gpus)}")
    else:
        lines.append("gpu_check: NO GPU visible to TensorFlow (it runs on the CPU here). Why:")
        lines += [f"  - {cause}" for cause in diagnosis.causes]
    return "\n".join(lines)


# ---------------------------------------------------------------- the real probes


def probe_libcuda(name: str = "libcuda.so.1") -> Libcuda:
    try:
        library = ctypes.CDLL(name)
    except OSError as error:
        return Libcuda(load_error=str(error) or f"{name} not found")
    version = ctypes.c_int(0)
    driver_cuda_version = version.value if library.cuDriverGetVersion(ctypes.byref(version)) == 0 else None
    init_code = int(library.cuInit(0))
    init_error = None
    if init_code:
        text = ctypes.c_char_p()
        if library.cuGetErrorName(init_code, ctypes.byref(text)) == 0 and text.value:
            init_error = text.value.decode()
        return Libcuda(driver_cuda_version=driver_cuda_version, init_code=init_code, init_error=init_error)
    count = ctypes.c_int(0)
    device_count = count.value if library.cuDeviceGetCount(ctypes.byref(count)) == 0 else None
    capabilities = []
    for ordinal in range(device_count or 0):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        if library.cuDeviceGet(ctypes.byref(device), ordinal) != 0:
            continue
        library.cuDeviceGetAttribute(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
        library.cuDeviceGetAttribute(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
        capabilities.append((major.value, minor.value))
    return Libcuda(driver_cuda_version=driver_cuda_version, init_code=0, device_count=device_count, compute_capabilities=tuple(capabilities))


def nvidia_device_nodes(dev: Path = Path("/dev")) -> tuple[str, ...]:
    """The GPU device nodes (nvidia0, nvidia1, ...) and the control node, not nvidia-uvm and friends."""
    names = [Path(path).name for path in glob.glob(str(dev / "nvidia*"))]
    return tuple(str(dev / name) for name in sorted(names) if re.fullmatch(r"nvidia(\d+|ctl)", name))


def missing_wheels(names=CUDA_WHEELS) -> tuple[str, ...]:
    missing = []
    for name in names:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return tuple(missing)


def in_container(root: Path = Path("/")) -> bool:
    return (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists()


def probe() -> Probes:
    environment = os.environ
    libcuda = probe_libcuda()
    try:
        import tensorflow as tf

        build = tf.sysconfig.get_build_info()
        tensorflow = dict(
            tensorflow_version=tf.__version__,
            tensorflow_error=None,
            tensorflow_cuda_build=bool(build.get("is_cuda_build")),
            tensorflow_cuda_version=build.get("cuda_version"),
            tensorflow_gpus=tuple(device.name for device in tf.config.list_physical_devices("GPU")),
        )
    except Exception as error:  # an import failure is itself the answer
        tensorflow = dict(
            tensorflow_version=None,
            tensorflow_error=f"{type(error).__name__}: {error}",
            tensorflow_cuda_build=False,
            tensorflow_cuda_version=None,
            tensorflow_gpus=(),
        )
    return Probes(
        in_container=in_container(),
        nvidia_visible_devices=environment.get("NVIDIA_VISIBLE_DEVICES"),
        cuda_visible_devices=environment.get("CUDA_VISIBLE_DEVICES"),
        driver_capabilities=environment.get("NVIDIA_DRIVER_CAPABILITIES"),
        device_nodes=nvidia_device_nodes(),
        nvidia_smi=shutil.which("nvidia-smi"),
        libcuda=libcuda,
        missing_cuda_wheels=missing_wheels(),
        **tensorflow,
    )


def main(argv=None, probe_function=probe) -> int:
    argparse.ArgumentParser(prog="python -m scripts.gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    probes = probe_function()
    diagnosis = diagnose(probes)
    print(report(probes, diagnosis), flush=True)
    return 0 if diagnosis.has_gpu else 1


if __name__ == "__main__":
    sys.exit(main())
