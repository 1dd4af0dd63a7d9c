"""Review 15, with a GPU mocked on this CPU machine (torch.cuda's answers monkeypatched):
- a pre-Ampere GPU (T4 sm_75, V100 sm_70) autocasts in fp16, not in the bf16 torch only
  emulates there, and the GPU asked about is the one chosen (cuda:N), not the current one;
- a GPU the installed torch has no kernels for (an RTX 5090, sm_120, with a torch built up
  to sm_90): --device auto takes the CPU with a note, --device cuda is a HostEnvError before
  anything is written, instead of "no kernel image is available" told as a dlbox bug;
- cuBLAS's and cuDNN's allocation failures are out of memory, not dlbox bugs;
- the cuda:N hint says how nvidia-smi's numbering matches CUDA's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlbox.cli import main
from dlbox.errors import EXIT_ERROR, DlboxError, HostEnvError
from dlbox.training import device as device_module
from dlbox.training.config import TrainConfig
from dlbox.training.device import amp_dtype, device_type, is_out_of_memory, resolve_device

TORCH_90 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # 2.6.0+cu124


def fake_gpus(monkeypatch: pytest.MonkeyPatch, *gpus: tuple[str, tuple[int, int]],
              arch_list: list[str] | None = None) -> None:
    """torch.cuda as it is on a host with these GPUs (name, capability); GPU 0 current."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(gpus))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    # torch's own answer on a T4 (emulated bf16): it must not decide
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list",
                        lambda: list(TORCH_90 if arch_list is None else arch_list))
    monkeypatch.setattr(device_module, "_told_without_kernels", set())

    def index(device: torch.device | str | int | None = None) -> int:
        if device is None:
            return 0
        if isinstance(device, int):
            return device
        chosen = torch.device(device)
        return 0 if chosen.index is None else chosen.index

    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: gpus[index(device)][1])
    monkeypatch.setattr(torch.cuda, "get_device_name",
                        lambda device=None: gpus[index(device)][0])


# ---- 1. bf16 only from Ampere on, on the GPU chosen -------------------------------------

@pytest.mark.parametrize(("capability", "expected"), [
    ((7, 5), torch.float16),  # T4
    ((7, 0), torch.float16),  # V100
    ((6, 1), torch.float16),  # GTX 1080
    ((8, 0), torch.bfloat16),  # A100
    ((8, 6), torch.bfloat16),  # RTX 3090
    ((9, 0), torch.bfloat16),  # H100
])
def test_bf16_only_on_ampere_or_newer(monkeypatch: pytest.MonkeyPatch,
                                      capability: tuple[int, int], expected: torch.dtype) -> None:
    from dlbox.training.speedrun import resolve_precision

    fake_gpus(monkeypatch, ("GPU", capability), arch_list=[])
    assert amp_dtype(torch.device("cuda")) is expected
    assert resolve_precision("auto", torch.device("cuda")) is expected


def test_amp_dtype_asks_about_the_gpu_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, ("NVIDIA A100", (8, 0)), ("Tesla T4", (7, 5)), arch_list=[])
    assert amp_dtype(torch.device("cuda:0")) is torch.bfloat16
    assert amp_dtype(torch.device("cuda:1")) is torch.float16  # not the current GPU's answer
    assert amp_dtype(torch.device("cpu")) is None


# ---- 2. a GPU torch has no kernels for ---------------------------------------------------

@pytest.mark.parametrize(("capability", "arch_list", "served"), [
    ((12, 0), TORCH_90, False),  # RTX 5090 on a torch built up to sm_90
    ((6, 1), ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], False),  # cu128
    ((8, 9), ["sm_80", "sm_86", "sm_90"], True),  # sm_86 cubins run on 8.9
    ((8, 6), TORCH_90, True),
    ((12, 0), ["sm_80", "sm_90", "compute_90"], True),  # PTX JIT-compiles for newer GPUs
    ((7, 5), ["sm_80", "compute_80"], False),  # PTX runs on newer GPUs only
    ((9, 0), ["sm_90a"], True),
    ((8, 6), [], True),  # torch names no arch list: nothing to go by
])
def test_which_gpus_torch_has_kernels_for(capability: tuple[int, int], arch_list: list[str],
                                          served: bool) -> None:
    assert device_module.torch_has_kernels_for(capability, arch_list) is served


def test_auto_takes_the_cpu_with_a_note_for_a_gpu_without_kernels(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 5090", (12, 0)))
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")  # said once a process
    assert device_type("auto") == "cpu"  # the recipe of the device auto takes
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: ")
    for said in ("NVIDIA GeForce RTX 5090", "sm_120", torch.__version__, "sm_50", "sm_90",
                 "dlbox doctor", "CPU"):
        assert said in err


def test_auto_takes_a_gpu_torch_has_kernels_for_without_a_word(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 3090", (8, 6)))
    assert resolve_device("auto") == torch.device("cuda")
    assert device_type("auto") == "cuda"
    assert resolve_device("cuda") == torch.device("cuda")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_on_a_gpu_without_kernels_is_a_host_error(monkeypatch: pytest.MonkeyPatch,
                                                       spec: str) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 5090", (12, 0)))
    with pytest.raises(HostEnvError) as refused:
        resolve_device(spec)
    message, hint = refused.value.message, refused.value.hint or ""
    assert message.startswith(f"--device {spec} ")
    assert "\n" not in message
    for said in ("NVIDIA GeForce RTX 5090", "sm_120", torch.__version__, "sm_50 to sm_90"):
        assert said in message
    assert "sm_120" in hint and "dlbox doctor" in hint and "--device cpu" in hint


def test_cuda_n_checks_the_gpu_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 3090", (8, 6)),
              ("NVIDIA GeForce RTX 5090", (12, 0)))
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda")  # GPU 0, the one auto takes
    with pytest.raises(HostEnvError, match="sm_120"):
        resolve_device("cuda:1")


def test_a_resumed_runs_device_names_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 5090", (12, 0)))
    with pytest.raises(HostEnvError, match=r"^runs/a/config\.json says device cuda, which "):
        resolve_device("cuda", source="runs/a/config.json")


def test_train_on_a_gpu_without_kernels_fails_before_writing(
        monkeypatch: pytest.MonkeyPatch, fake_cifar_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 5090", (12, 0)))
    code = main(["train", "--model", "tiny", "--device", "cuda", "--num-train", "200",
                 "--num-test", "50", "--no-progress", "--data", str(fake_cifar_dir),
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert "error: --device cuda needs" in err and "sm_120" in err and "hint:" in err
    assert not (tmp_path / "run").exists()


# ---- 3. cuBLAS / cuDNN allocation failures -----------------------------------------------

@pytest.mark.parametrize("text", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
])
def test_library_allocation_failures_are_out_of_memory(text: str) -> None:
    from dlbox.training.loop import out_of_memory_is_an_error

    assert is_out_of_memory(RuntimeError(text))
    assert is_out_of_memory(torch.AcceleratorError(text))
    assert not is_out_of_memory(ValueError(text))
    config = TrainConfig(model="tiny", batch_size=256)
    with pytest.raises(DlboxError) as caught, \
            out_of_memory_is_an_error(config, torch.device("cuda:0"), None):
        raise RuntimeError(text)
    assert caught.value.message == ("out of memory on cuda:0 training model 'tiny' with batch "
                                    "size 256")


# ---- 4. the cuda:N hint --------------------------------------------------------------------

def test_the_gpu_index_hint_says_how_nvidia_smi_numbers_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, ("NVIDIA GeForce RTX 3090", (8, 6)))
    with pytest.raises(HostEnvError) as refused:
        resolve_device("cuda:3")
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in (refused.value.hint or "")
