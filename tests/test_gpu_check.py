"""scripts.gpu_check: the diagnosis from faked probes (no GPU or driver needed) and the probes that read files."""

import dataclasses
from pathlib import Path

import pytest

from scripts import gpu_check
from scripts.gpu_check import CUDA_WHEELS, Libcuda, Probes, diagnose, main

DEVICES = ("/dev/nvidia0", "/dev/nvidiactl")
WORKING_DRIVER = Libcuda(driver_cuda_version=12040, init_code=0, device_count=1, compute_capabilities=((8, 6),))
NO_DRIVER = Libcuda(load_error="libcuda.so.1: cannot open shared object file: No such file or directory")


def gpu_image(**changes) -> Probes:
    """The GPU image started with --gpus all on a working host (TensorFlow lists the GPU)."""
    probes = Probes(
        in_container=True,
        nvidia_visible_devices="all",
        cuda_visible_devices=None,
        driver_capabilities="compute,utility",
        device_nodes=DEVICES,
        nvidia_smi="/usr/bin/nvidia-smi",
        libcuda=WORKING_DRIVER,
        missing_cuda_wheels=(),
        tensorflow_version="2.21.0",
        tensorflow_error=None,
        tensorflow_cuda_build=True,
        tensorflow_cuda_version="12.5.1",
        tensorflow_gpus=("/physical_device:GPU:0",),
    )
    return dataclasses.replace(probes, **changes)


def no_gpu(**changes) -> Probes:
    """The GPU image started without --gpus: nothing of the NVIDIA runtime inside."""
    return gpu_image(**({"device_nodes": (), "nvidia_smi": None, "libcuda": NO_DRIVER, "tensorflow_gpus": ()} | changes))


def test_a_listed_gpu_is_success_with_status_0(capsys):
    assert diagnose(gpu_image()) == gpu_check.Diagnosis(True, ())
    assert main([], probe_function=gpu_image) == 0
    output = capsys.readouterr().out
    assert "gpu_check: OK, TensorFlow sees 1 GPU(s): /physical_device:GPU:0" in output
    assert "driver CUDA 12.4, cuInit ok, 1 device(s) (compute capability 8.6)" in output


def test_container_without_gpu_request_names_the_missing_flag_and_exits_1(capsys):
    diagnosis = diagnose(no_gpu())
    assert not diagnosis.has_gpu
    assert len(diagnosis.causes) == 1
    (cause,) = diagnosis.causes
    assert cause.startswith("the container was given no GPU: it has no /dev/nvidia* device and no NVIDIA driver library (libcuda.so.1) nor nvidia-smi")
    assert "--gpus all" in cause and "docker-compose.gpu.yml" in cause and "NVIDIA Container Toolkit" in cause
    assert main([], probe_function=no_gpu) == 1
    output = capsys.readouterr().out
    assert "gpu_check: NO GPU visible to TensorFlow (it runs on the CPU here). Why:" in output
    assert "  - the container was given no GPU" in output
    assert "/dev/nvidia*                 none" in output
    assert "nvidia-smi                   not on PATH" in output
    assert "does not load (libcuda.so.1: cannot open shared object file" in output


def test_host_without_driver_is_told_to_install_it():
    (cause,) = diagnose(no_gpu(in_container=False)).causes
    assert cause.startswith("this machine shows no NVIDIA GPU") and "Install the NVIDIA driver" in cause


def test_cpu_image_reports_missing_cuda_wheels_and_missing_device():
    causes = diagnose(no_gpu(missing_cuda_wheels=CUDA_WHEELS)).causes
    assert len(causes) == 2
    assert causes[0].startswith("TensorFlow's CUDA libraries are not installed (none of the 12 nvidia-*-cu12 wheels of tensorflow[and-cuda])")
    assert causes[1].startswith("the container was given no GPU")
    # With a GPU given, the wheels alone are the cause; a partial install names what is missing.
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), missing_cuda_wheels=("nvidia-cudnn-cu12",))).causes
    assert "(missing: nvidia-cudnn-cu12)" in cause


@pytest.mark.parametrize("value", ["void", "none", "", "NONE"])
def test_nvidia_visible_devices_that_hide_every_gpu(value):
    causes = diagnose(no_gpu(nvidia_visible_devices=value)).causes
    assert causes[0].startswith(f"NVIDIA_VISIBLE_DEVICES={value!r} asks the NVIDIA container runtime for no GPU")
    assert causes[1].startswith("the container was given no GPU")
    assert not any("NVIDIA_VISIBLE_DEVICES" in cause for cause in diagnose(no_gpu(nvidia_visible_devices="0")).causes)


def test_cuda_visible_devices_minus_one_hides_gpus():
    probes = gpu_image(tensorflow_gpus=(), cuda_visible_devices="-1", libcuda=dataclasses.replace(WORKING_DRIVER, device_count=0))
    causes = diagnose(probes).causes
    assert causes[0] == "CUDA_VISIBLE_DEVICES='-1' hides every GPU from CUDA: unset it or list GPU indices."
    assert causes[1].startswith("the NVIDIA driver library loads but CUDA finds no device: the GPUs were not given to this process")


def test_devices_without_driver_library_in_a_container_and_on_a_host():
    (cause,) = diagnose(no_gpu(device_nodes=DEVICES, driver_capabilities="utility")).causes
    assert cause.startswith("GPU devices are present (/dev/nvidia0, /dev/nvidiactl) but the NVIDIA driver library is not: libcuda.so.1: cannot open")
    assert "passed by hand (--device)" in cause and "NVIDIA_DRIVER_CAPABILITIES=utility lacks 'compute'" in cause
    (cause,) = diagnose(no_gpu(device_nodes=DEVICES, in_container=False)).causes
    assert cause.startswith("the NVIDIA kernel driver is loaded (/dev/nvidia0, /dev/nvidiactl) but its CUDA library libcuda.so.1 does not load")


def test_old_driver_is_told_to_update():
    old = Libcuda(driver_cuda_version=11040, init_code=gpu_check.CUDA_ERROR_INSUFFICIENT_DRIVER, init_error="CUDA_ERROR_INSUFFICIENT_DRIVER")
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), libcuda=old)).causes
    assert cause.startswith("the NVIDIA driver supports CUDA up to 11.4; TensorFlow's CUDA build needs CUDA 12 (driver >= 525")
    # An old driver whose cuInit succeeds is still too old.
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), libcuda=dataclasses.replace(WORKING_DRIVER, driver_cuda_version=11080))).causes
    assert "supports CUDA up to 11.8" in cause


def test_other_cuinit_failures_and_old_gpus_and_unexplained_cases():
    failing = Libcuda(driver_cuda_version=12020, init_code=999, init_error="CUDA_ERROR_UNKNOWN")
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), libcuda=failing)).causes
    assert cause.startswith("cuInit failed with CUDA_ERROR_UNKNOWN (999), driver CUDA 12.2.")
    no_device = Libcuda(driver_cuda_version=12020, init_code=gpu_check.CUDA_ERROR_NO_DEVICE, init_error="CUDA_ERROR_NO_DEVICE")
    (cause,) = diagnose(no_gpu(libcuda=no_device)).causes
    assert cause.startswith("the NVIDIA driver library loads but CUDA finds no device (no /dev/nvidia* device here)")
    kepler = dataclasses.replace(WORKING_DRIVER, device_count=2, compute_capabilities=((3, 5), (5, 2)))
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), libcuda=kepler)).causes
    assert cause == "CUDA sees 2 GPU(s) of compute capability 3.5, 5.2; TensorFlow's CUDA build needs at least 6.0."
    (cause,) = diagnose(gpu_image(tensorflow_gpus=())).causes
    assert cause.startswith("CUDA sees 1 GPU(s) (driver CUDA 12.4) but TensorFlow lists none") and "TF_CPP_MIN_LOG_LEVEL=0" in cause


def test_tensorflow_that_does_not_import_or_lacks_cuda():
    broken = no_gpu(tensorflow_version=None, tensorflow_error="ImportError: libfoo.so", tensorflow_cuda_build=False)
    causes = diagnose(broken).causes
    assert causes[0] == "TensorFlow does not import: ImportError: libfoo.so"
    assert causes[1].startswith("the container was given no GPU")
    (cause,) = diagnose(gpu_image(tensorflow_gpus=(), tensorflow_cuda_build=False)).causes
    assert cause.startswith("this TensorFlow 2.21.0 is built without CUDA")


def test_device_nodes_keep_gpus_and_the_control_node_only(tmp_path):
    for name in ("nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-modeset", "null"):
        (tmp_path / name).touch()
    assert gpu_check.nvidia_device_nodes(tmp_path) == tuple(str(tmp_path / name) for name in ("nvidia0", "nvidia1", "nvidiactl"))
    assert gpu_check.nvidia_device_nodes(tmp_path / "missing") == ()


def test_container_markers(tmp_path):
    assert not gpu_check.in_container(tmp_path)
    (tmp_path / ".dockerenv").touch()
    assert gpu_check.in_container(tmp_path)
    (tmp_path / ".dockerenv").unlink()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").touch()
    assert gpu_check.in_container(tmp_path)


def test_missing_wheels_and_an_absent_libcuda():
    assert gpu_check.missing_wheels(("pytest", "no-such-package-for-gpu-check")) == ("no-such-package-for-gpu-check",)
    probe = gpu_check.probe_libcuda("libno-such-cuda-for-gpu-check.so.1")
    assert not probe.loaded and "libno-such-cuda-for-gpu-check.so.1" in probe.load_error
    assert probe.init_code is None and probe.device_count is None


def test_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"], probe_function=gpu_image)
    assert stop.value.code == 0
    assert "Exit status 0 when TensorFlow lists a GPU; 1 when it" in capsys.readouterr().out


def test_the_gpu_check_service_runs_the_script():
    compose = (Path(__file__).resolve().parents[1] / "docker-compose.gpu.yml").read_text()
    assert "command: python -m scripts.gpu_check" in compose
