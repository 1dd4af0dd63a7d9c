"""The build resolver: newest build the driver and every GPU can run, and why."""

from __future__ import annotations

import json

import pytest

from dlbox.errors import HostEnvError, UsageError
from dlbox.hostenv.facts import GpuFacts, HostFacts, NvidiaFacts, SystemFacts
from dlbox.hostenv.resolve import (
    ProbedDriver,
    ResolvedBuild,
    Target,
    normalize_target,
    resolve_build,
    target_from_host,
)


def gpu(driver: str, *caps: str, python: str | None = None) -> Target:
    return Target(driver=driver, compute_capabilities=caps, python=python)


def test_blackwell_needs_torch_2_7_with_cuda_12_8() -> None:
    build = resolve_build("torch", gpu("570.86.16", "12.0"))
    assert (build.version, build.variant, build.cuda) == ("2.11.0", "cu128", "12.8")
    assert build.wheel_index == "https://download.pytorch.org/whl/cu128"
    assert build.requirements == ("torch==2.11.0",)
    # on CUDA 12.8's first release, 2.7 was the first torch with sm_120 kernels
    forced = resolve_build("torch", Target(driver="570.86.16", compute_capabilities=("12.0",),
                                           python="3.9"))
    assert (forced.version, forced.variant) == ("2.8.0", "cu128")
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="570.86.16", compute_capabilities=("12.0",),
                                      cuda="12.6"))
    assert "no kernel image" in info.value.message


def test_old_driver_gets_cuda_11_8_build() -> None:
    build = resolve_build("torch", gpu("470.223.02", "7.5"))
    assert (build.version, build.variant, build.min_driver) == ("2.7.1", "cu118", "450.80.02")
    assert any("cu126" in r and "470.223.02 < 525.60.13" in r for r in build.reasons)
    # what the build's user is to know, and no claim that nvidia/cuda's 11.8 image refuses
    # to start (its NVIDIA_REQUIRE_CUDA lets R470 datacenter drivers through, review found)
    assert "driver 470.223.02 is below CUDA 11.8's GA driver 520.61.05: torch's wheels run on " \
        "it through minor-version compatibility (driver >= 450.80.02), but code that " \
        "JIT-compiles newer PTX can fail with 'unsupported toolchain'" in build.warnings


def test_prefers_cuda_whose_ga_driver_is_met() -> None:
    build = resolve_build("torch", gpu("580.95.05", "9.0"))
    assert build.variant == "cu130"  # 13.2's GA driver is newer than 580
    assert build.min_driver == "580" and build.ga_driver == "580.65.06"
    assert not any("GA driver" in w for w in build.warnings)


def test_mixed_gpus_need_one_build_for_both() -> None:
    build = resolve_build("torch", gpu("560.35.03", "8.6", "6.1"))
    assert build.variant == "cu126"
    assert "sm_86, sm_61" in build.reasons[0]


def test_cpu_and_no_driver() -> None:
    cpu = resolve_build("torch", Target(cpu=True, python="3.11"))
    assert (cpu.variant, cpu.cuda, cpu.min_driver) == ("cpu", None, None)
    assert cpu.wheel_index == "https://download.pytorch.org/whl/cpu"
    assert resolve_build("torch", Target()).variant == "cpu"
    assert resolve_build("tensorflow", Target(cpu=True)).requirements == ("tensorflow-cpu==2.21.0",)
    assert resolve_build("jax", Target(cpu=True)).requirements == ("jax[cpu]==0.10.2",)


def test_python_filter() -> None:
    assert resolve_build("torch", Target(cpu=True, python="3.8")).version == "2.4.1"
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(cpu=True, python="3.7"))
    assert info.value.hint and "3.8" in info.value.hint


def test_tensorflow_builds() -> None:
    build = resolve_build("tensorflow", gpu("535.104.05", "8.6"))
    assert (build.version, build.variant, build.cuda, build.cudnn) == (
        "2.21.0", "and-cuda", "12.5", "9.3")
    assert build.requirements == ("tensorflow[and-cuda]==2.21.0",)
    old = resolve_build("tensorflow", Target(driver="460.32.03", compute_capabilities=("7.0",),
                                             cuda="11.2"))
    assert (old.version, old.variant) == ("2.11.1", "cuda-system")
    assert any("cuDNN 8.1" in r for r in old.reasons)
    blackwell = resolve_build("tensorflow", gpu("570.133.07", "12.0"))
    assert any("PTX JIT" in w for w in blackwell.warnings)


def test_jax_plugins() -> None:
    assert resolve_build("jax", gpu("580.95.05", "9.0")).requirements == ("jax[cuda13]==0.10.2",)
    cuda12 = resolve_build("jax", gpu("535.104.05", "8.6"))
    assert (cuda12.variant, cuda12.min_driver) == ("cuda12", "525.60.13")
    # cuda13 needs Turing or newer; a Pascal GPU on a 580 driver gets cuda12
    assert resolve_build("jax", gpu("580.95.05", "6.1")).variant == "cuda12"
    with pytest.raises(HostEnvError):
        resolve_build("jax", gpu("470.223.02", "7.5"))


def test_nothing_fits_says_why_with_a_hint() -> None:
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", gpu("440.33.01", "7.5"))
    assert info.value.message == ("driver 440.33.01 is older than every torch build needs (the "
                                  "lowest is 450.80.02, for torch 2.7.1 cu118)")
    assert info.value.hint == "update the NVIDIA driver to >= 450.80.02, or resolve with --cpu"


def test_gpu_newer_than_the_driver_is_refused() -> None:
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", gpu("535.104.05", "12.0"))
    assert "does not support sm_120" in info.value.message
    assert info.value.hint == "install an NVIDIA driver of branch 570 or newer for this GPU"


def test_a_gpu_the_driver_listed_is_one_it_runs() -> None:
    """Found by review: an RTX 4090 (sm_89) on its launch driver 520.56.06 was refused,
    "they arrived with CUDA 11.8, driver >= 520.61.05": CUDA 11.8's GA driver came after."""
    listed = resolve_build("torch", Target(driver="520.56.06", compute_capabilities=("8.9",),
                                           listed=True))
    assert (listed.version, listed.variant) == ("2.7.1", "cu118")
    # a hypothetical host is judged by the driver's branch: 520.56.06 is of 11.8's branch
    assert resolve_build("torch", gpu("520.56.06", "8.9")).variant == "cu118"
    with pytest.raises(HostEnvError, match="does not support sm_89"):
        resolve_build("torch", gpu("515.65.01", "8.9"))


@pytest.mark.parametrize("driver", ["418.87.01", "470.256.02"])
def test_a_gpu_no_known_build_has_kernels_for_says_so_whatever_the_driver(driver: str) -> None:
    """Review: sm_35 on driver 418 was told to update the driver, and on 470 to use an older
    torch than dlbox's data holds."""
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", gpu(driver, "3.5"))
    assert info.value.message.startswith("no torch build that dlbox knows (torch 2.0")
    assert info.value.message.endswith(" has kernels for sm_35, whatever the driver")
    assert (info.value.hint or "").startswith("resolve with --cpu")


@pytest.mark.parametrize("driver, cc, last", [("535.104.05", "3.7", "R470 is the last driver "
                                               "branch for Kepler GPUs"),
                                              ("590.44.01", "6.1", "R580 is the last driver "
                                               "branch for")])
def test_a_driver_past_the_gpus_last_branch_is_refused(driver: str, cc: str, last: str) -> None:
    """Review: a K80 (sm_37) on driver 535, or a GTX 1080 (sm_61) on 590, resolved to a build
    as if such a host could exist."""
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", gpu(driver, cc))
    assert info.value.message.startswith(f"driver {driver} does not support sm_"
                                         f"{cc.replace('.', '')} GPUs: {last}")
    assert resolve_build("torch", Target(driver=driver, compute_capabilities=(cc,),
                                         listed=True)) is not None  # what nvidia-smi lists


def test_a_pin_refused_for_the_gpus_cudnn_says_so_first_and_names_what_runs() -> None:
    """torch 2.5 on a K80: its cu118 build still has sm_37 kernels but ships cuDNN 9.1
    (Maxwell and newer); that, not the driver, is the cause to name first."""
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="470.256.02", compute_capabilities=("3.7",),
                                      version="2.5"))
    assert info.value.message.startswith(
        "no torch build runs on sm_37 with driver 470.256.02: torch 2.5.1 cu118: its cuDNN 9.1 "
        "supports compute capability >= 5.0, not sm_37")
    assert info.value.hint == ("leave --framework-version out (torch 2.3.1 cu118 runs here), "
                               "or resolve with --cpu")


@pytest.mark.parametrize("target, needle", [
    (Target(driver="five-three-five"), "not a version number"),
    (Target(driver="535.104.05", compute_capabilities=("ampere",)), "MAJOR.MINOR"),
    # Parses as MAJOR.MINOR but no GPU has it: it printed "no torch build runs on sm_990".
    (Target(driver="535.104.05", compute_capabilities=("99.0",)), "not one an NVIDIA GPU has"),
    (Target(driver="535.104.05", compute_capabilities=("0.5",)), "not one an NVIDIA GPU has"),
    (Target(cpu=True, cuda="12.4"), "CPU-only"),
    (Target(cpu=True, driver="535.104.05"), "--cpu cannot"),
    (Target(compute_capabilities=("8.6",)), "needs a driver"),
    (Target(cpu=True, python="two"), "Python version"),
    # It read "Python version '2.7' is not like 3.11": it is, and Python 2 is the problem.
    (Target(cpu=True, python="2.7"), "Python 2.7 is not supported"),
])
def test_bad_targets_are_usage_errors(target: Target, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_build("torch", target)
    assert needle in info.value.message and info.value.hint


def test_unknown_framework() -> None:
    with pytest.raises(UsageError):
        resolve_build("caffe", Target(cpu=True))
    assert resolve_build("pytorch", Target(cpu=True)).framework == "torch"


def test_pinned_versions() -> None:
    pinned = resolve_build("torch", Target(driver="570.86.16", compute_capabilities=("12.0",),
                                           version="2.8"))
    assert (pinned.version, pinned.variant) == ("2.8.0", "cu128")
    patch = resolve_build("torch", Target(cpu=True, version="2.7.0"))
    assert (patch.version, patch.variant) == ("2.7.0", "cpu")
    future = resolve_build("torch", Target(driver="580.95.05", compute_capabilities=("9.0",),
                                           version="2.16.1"))
    assert (future.version, future.variant) == ("2.16.1", "cu130")
    assert future.warnings[0].startswith("torch 2.16.1 is not in dlbox's compatibility data")
    assert "nearest known row, torch 2.15" in future.warnings[0]
    # A release the data does not know: any of its patches, not pip's ==2.16 (2.16.0).
    release = resolve_build("torch", Target(cpu=True, version="2.16"))
    assert (release.version, release.requirements) == ("2.16.*", ("torch==2.16.*",))
    assert release.warnings[0].startswith("torch 2.16 is not in dlbox's compatibility data")
    # A release it knows: its newest patch.
    assert resolve_build("torch", Target(cpu=True, version="2.1")).requirements == (
        "torch==2.1.2",)
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(cpu=True, python="3.8", version="2.9"))
    assert info.value.message == "torch 2.9 does not support Python 3.8"
    old_tf = resolve_build("tensorflow", Target(driver="535.104.05",
                                                compute_capabilities=("8.6",), version="2.15"))
    assert old_tf.requirements == ("tensorflow[and-cuda]==2.15.1",)


def test_uncertain_rows_warn() -> None:
    build = resolve_build("torch", Target(cpu=True))
    assert build.version == "2.15.0"
    assert any("uncertain" in w for w in build.warnings)


def test_torch_2_15_has_no_cuda_12_6_build() -> None:
    """Found by review: the 2.15 row was copied from 2.14, cu126 included, but PyTorch 2.15
    publishes no CUDA 12.6 wheels (pytorch/pytorch #190385): a driver below 580 or a
    Pascal GPU was given torch==2.15.0+cu126, which pip cannot find."""
    for driver, arch in (("570.124.06", "9.0"), ("580.95.05", "6.1")):
        build = resolve_build("torch", gpu(driver, arch))
        assert (build.version, build.variant) == ("2.14.1", "cu126"), (driver, arch)
    newest = resolve_build("torch", gpu("580.95.05", "9.0"))
    assert (newest.version, newest.variant) == ("2.15.0", "cu130")
    with pytest.raises(HostEnvError):
        resolve_build("torch", Target(driver="580.95.05", compute_capabilities=("6.1",),
                                      version="2.15"))


def test_to_dict_is_json_ready() -> None:
    build = resolve_build("torch", gpu("535.104.05", "8.6"))
    data = json.loads(json.dumps(build.to_dict()))
    assert data["requirements"] == ["torch==2.14.1"]
    assert data["min_driver"] == "525.60.13"
    assert set(data) >= {"framework", "version", "variant", "cuda", "cudnn", "wheel_index",
                         "requirements", "python_versions", "min_driver", "reasons"}
    assert ResolvedBuild(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in data.items()}) == build


def test_target_from_host() -> None:
    facts = HostFacts(
        system=SystemFacts(python="3.11.9"),
        nvidia=NvidiaFacts(source="nvml", driver_version="550.54.15",
                           gpus=(GpuFacts(0, "A", "8.0"), GpuFacts(1, "B", "8.0"),
                                 GpuFacts(2, "C", "8.9"))),
    )
    assert target_from_host(facts) == Target(driver="550.54.15",
                                             compute_capabilities=("8.0", "8.9"), python="3.11",
                                             listed=True)
    broken = HostFacts(nvidia=NvidiaFacts(error="Failed to initialize NVML: Unknown Error"))
    assert target_from_host(broken).cpu


def test_tensorflow_2_4_on_a_cuda_11_0_driver() -> None:
    # driver 450.51.06 is CUDA 11.0.3's own driver: TF 2.4 (CUDA 11.0) runs on it
    build = resolve_build("tensorflow", Target(driver="450.51.06", compute_capabilities=("7.0",),
                                               python="3.8"))
    assert (build.version, build.cuda, build.min_driver) == ("2.4.4", "11.0", "450.51.05")


def test_tensorflow_2_0_and_1x_gpu_builds_are_tensorflow_gpu() -> None:
    # up to 2.0 the tensorflow wheel is CPU-only: a GPU host needs tensorflow-gpu
    build = resolve_build("tensorflow", Target(driver="410.104", compute_capabilities=("7.0",),
                                               python="3.7"))
    assert (build.version, build.cuda) == ("2.0.4", "10.0")
    assert build.requirements == ("tensorflow-gpu==2.0.4",)
    cpu = resolve_build("tensorflow", Target(cpu=True, version="2.0"))
    assert cpu.requirements == ("tensorflow==2.0.4",)
    assert resolve_build("tensorflow", Target(cpu=True)).requirements[0].startswith(
        "tensorflow-cpu==")
    # a CUDA 9.0 driver gets the last TensorFlow built with CUDA 9.0
    old = resolve_build("tensorflow", Target(driver="384.130", compute_capabilities=("6.1",),
                                             python="3.6"))
    assert (old.version, old.cuda, old.cudnn, old.min_driver) == ("1.12.3", "9.0", "7", "384.81")
    assert old.requirements == ("tensorflow-gpu==1.12.3",)


def test_a_gpu_too_old_for_every_build_is_not_told_to_update_the_driver() -> None:
    # a Tesla K80 (sm_37) on its last driver branch (R470): jax needs sm_52+, so a driver
    # update would not help; the error names the GPU, not the driver
    with pytest.raises(HostEnvError) as info:
        resolve_build("jax", gpu("470.256.02", "3.7"))
    assert "needs compute capability >= 5.2, GPU has 3.7" in info.value.message
    assert "driver 470.256.02 <" not in info.value.message
    assert info.value.hint == "no jax GPU build supports this GPU: resolve with --cpu"
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", gpu("470.256.02", "3.0", python="3.11"))
    assert info.value.hint == "no tensorflow GPU build supports this GPU: resolve with --cpu"
    # where the driver is what blocks, the hint names the driver that is needed
    with pytest.raises(HostEnvError) as info:
        resolve_build("jax", gpu("470.256.02", "7.5"))
    assert info.value.hint == "update the NVIDIA driver to >= 525.60.13, or resolve with --cpu"


def test_kepler_gets_the_newest_torch_whose_cudnn_still_supports_it() -> None:
    # cu118 wheels of torch 2.4-2.7 keep sm_37 kernels but ship cuDNN 9.1 (Maxwell and newer)
    build = resolve_build("torch", gpu("470.82.01", "3.7"))
    assert (build.version, build.variant, build.cudnn) == ("2.3.1", "cu118", "8.7")
    assert any("torch 2.7.1 cu118: its cuDNN 9.1 supports compute capability >= 5.0, not sm_37"
               in reason for reason in build.reasons)
    # a Maxwell GPU on the same driver is not held back
    assert resolve_build("torch", gpu("470.82.01", "5.2")).version == "2.7.1"


def test_a_gpu_past_its_last_driver_branch_is_not_told_to_update_the_driver() -> None:
    """Found by a review: `doctor --resolve torch --framework-version 2.9` for a Tesla K80
    said "update the NVIDIA driver to >= 525.60.13", which Kepler (last branch R470) can
    never run; the hint now says so, and names the release that does run."""
    kepler = Target(driver="470.256.02", compute_capabilities=("3.7",), version="2.9")
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", kepler)
    assert info.value.hint == (
        "R470 is the last driver branch for Kepler GPUs (sm_37), and these torch builds need "
        ">= 525.60.13: leave --framework-version out (torch 2.3.1 cu118 runs here), or "
        "resolve with --cpu")
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="470.256.02", compute_capabilities=("3.7",),
                                      cuda="12.4"))
    assert info.value.hint is not None
    assert info.value.hint.endswith(": leave --cuda out (torch 2.3.1 cu118 runs here), or "
                                    "resolve with --cpu")
    # a pin refused for the GPU itself names the release that runs
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="470.256.02", compute_capabilities=("3.7",),
                                           version="2.15"))
    assert info.value.hint == (
        "no tensorflow GPU build that you asked for supports this GPU: leave "
        "--framework-version out (tensorflow 2.14.1 and-cuda runs here), or resolve with --cpu")
    # a K80 whose driver is older than its last branch can still be told to update
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="418.40", compute_capabilities=("3.7",),
                                      version="2.3"))
    assert info.value.hint == "update the NVIDIA driver to >= 450.80.02, or resolve with --cpu"
    # and a Turing GPU on R470 can really take R525
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="470.42", compute_capabilities=("7.5",),
                                      version="2.9"))
    assert info.value.hint == "update the NVIDIA driver to >= 525.60.13, or resolve with --cpu"


def test_a_pinned_release_is_not_called_the_newest_this_host_runs() -> None:
    """With --framework-version 2.7 it said "torch 2.7.1 is the newest release with a build
    this host runs", where the same host resolves 2.11 unpinned."""
    host = Target(driver="570.86.16", compute_capabilities=("12.0",))
    newest = resolve_build("torch", host)
    assert f"torch {newest.version} is the newest release with a build this host runs" \
        in newest.reasons
    series = resolve_build("torch", Target(driver="570.86.16", compute_capabilities=("12.0",),
                                           version="2.7"))
    assert series.version.startswith("2.7.") and series.version != newest.version
    assert (f"torch {series.version} is the newest 2.7 release with a build this host runs "
            "(--framework-version)") in series.reasons
    exact = resolve_build("torch", Target(driver="570.86.16", compute_capabilities=("12.0",),
                                          version=series.version))
    assert f"torch {series.version}, as --framework-version asks, has a build this host " \
           "runs" in exact.reasons
    assert not any("is the newest release" in reason for reason in series.reasons + exact.reasons)


def test_gpus_no_one_build_covers_are_told_to_target_one_kind() -> None:
    """Found by review: an RTX 5090 beside a GTX 1080 Ti was told "a newer GPU needs a newer
    driver and torch; an old GPU an older torch", which helps neither: no torch build has
    both sm_120 and sm_61 kernels, and R580 is Pascal's last driver branch."""
    with pytest.raises(HostEnvError) as info:
        resolve_build("torch", Target(driver="580.95.05", compute_capabilities=("12.0", "6.1")))
    assert info.value.hint == (
        "no one build runs these GPUs together: target one kind, --compute-capability 12.0 "
        "(torch 2.15.0 cu130) or --compute-capability 6.1 (torch 2.14.1 cu126), and run it on "
        "those GPUs only (--gpus device=N, or CUDA_VISIBLE_DEVICES), or resolve with --cpu")
    # one kind that has no build even alone: the general advice stays
    with pytest.raises(HostEnvError) as old:
        resolve_build("torch", Target(driver="580.95.05", compute_capabilities=("12.0", "3.0")))
    assert "target one kind" not in (old.value.hint or "")


def test_another_python_is_offered_only_where_one_has_a_gpu_build() -> None:
    """Found in review: a K80 (sm_37) with --python 3.11 was told "resolve with --cpu, or
    another --python" for jax, which has no GPU build for sm_37 on any Python."""
    for python in ("3.9", "3.11", "3.13"):
        with pytest.raises(HostEnvError) as info:
            resolve_build("jax", gpu("470.256.02", "3.7", python=python))
        assert info.value.hint == "no jax GPU build supports this GPU: resolve with --cpu"
    # a Tesla K40 (sm_35): only TensorFlow's CUDA 11 builds (up to 2.14) have it, and none
    # of them runs Python 3.12; another Python does have one
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", gpu("470.256.02", "3.5", python="3.12"))
    assert info.value.hint == ("no tensorflow GPU build for Python 3.12 supports this GPU: "
                               "resolve with --cpu, or another --python")
    assert resolve_build("tensorflow", gpu("470.256.02", "3.5")).version.startswith("2.14.")


def test_a_post_release_resolves_as_its_release() -> None:
    """Found in review: tensorflow 2.15.0.post1, a real PyPI post-release, was refused as
    "not a release or a version"."""
    build = resolve_build("tensorflow", Target(driver="550.54.14", compute_capabilities=("8.6",),
                                               version="2.15.0.post1"))
    assert (build.version, build.cuda, build.variant) == ("2.15.0.post1", "12.2", "and-cuda")
    assert build.requirements == ("tensorflow[and-cuda]==2.15.0.post1",)
    cpu = resolve_build("tensorflow", Target(cpu=True, version="2.15.0.post1"))
    assert cpu.requirements == ("tensorflow-cpu==2.15.0.post1",)
    # unpinned, the release's newest patch is still the newest
    assert resolve_build("tensorflow", Target(cpu=True, version="2.15")).version == "2.15.1"
    # a post-release that was never published, and nonsense, are still refused
    with pytest.raises(UsageError) as info:
        resolve_build("tensorflow", Target(cpu=True, version="2.15.1.post1"))
    assert info.value.message == "tensorflow 2.15.1.post1 is not a tensorflow release dlbox knows"
    # review: in set order (2.15.0.post1 before 2.15.0 at times)
    assert info.value.hint is not None
    assert info.value.hint.startswith("tensorflow 2.15 has 2.15.0, 2.15.0.post1, 2.15.1: ")
    for junk in ("2.15.0.post", "2.15.0.postx", "2.15.post1", "2.15.0.post1.post2"):
        with pytest.raises(UsageError) as info:
            resolve_build("tensorflow", Target(cpu=True, version=junk))
        assert "is not a release or a version" in info.value.message, junk
    with pytest.raises(UsageError) as info:
        resolve_build("tensorflow", Target(cpu=True, version="2.15.0.post1+cu118"))
    assert "names a build (cu118)" in info.value.message


def test_tensorflow_2_18_and_newer_have_no_kernels_for_maxwell() -> None:
    """Review: a GTX 980 (sm_52) was given tensorflow 2.21.0, but TensorFlow's hermetic CUDA
    12.5 wheels (2.18+) are built for sm_60, sm_70, sm_80, sm_89, compute_90 only; 2.16 and
    2.17 (CUDA 12.3) still had sm_50."""
    build = resolve_build("tensorflow", gpu("550.54.15", "5.2"))
    assert (build.version, build.variant) == ("2.17.1", "and-cuda")
    assert any("2.21.0" in r and "no kernel image for sm_52" in r for r in build.reasons)
    assert resolve_build("tensorflow", gpu("550.54.15", "6.1")).version == "2.21.0"
    # PTX (compute_90) still carries a newer GPU, with the CUDA-too-old warning as before
    assert resolve_build("tensorflow", gpu("570.133.07", "12.0")).version == "2.21.0"
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="550.54.15", compute_capabilities=("5.2",),
                                           version="2.18"))
    assert "no kernel image for sm_52" in info.value.message
    assert "leave --framework-version out (tensorflow 2.17.1 and-cuda runs here)" in (
        info.value.hint or "")


def test_tensorflow_2_1_to_2_3_have_no_kernels_for_sm_50() -> None:
    """Review: sm_50 got tensorflow 2.3.4, whose wheels have sm_52 cubins (not run by a 5.0
    GPU) and compute_70 PTX (not by anything older): 'no kernel image' (tensorflow#46537)."""
    build = resolve_build("tensorflow", gpu("418.39", "5.0"))
    assert build.version != "2.3.4"
    assert any("2.3.4" in r and "no kernel image for sm_50" in r for r in build.reasons)
    assert any("a driver >= 450.51.05 runs tensorflow 2.4.4" in r for r in build.reasons)
    assert resolve_build("tensorflow", gpu("418.39", "5.2")).version == "2.3.4"  # sm_52 cubin
    assert resolve_build("tensorflow", gpu("450.51.05", "5.0")).version == "2.4.4"
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="418.39", compute_capabilities=("5.0",),
                                           version="2.3"))
    assert "no kernel image for sm_50" in info.value.message


def test_tensorflow_with_a_cuda_no_release_has_says_so() -> None:
    """Review: --cuda 13.0 said 'no release matches' and blamed the GPU."""
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="580.95.05", compute_capabilities=("7.5",),
                                           cuda="13.0"))
    assert "has a CUDA 13.0 build" in info.value.message
    assert "12.5" in info.value.message and "GPU" not in (info.value.hint or "")
    assert "--cuda" in (info.value.hint or "")
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="580.95.05", compute_capabilities=("7.5",),
                                           cuda="12.2", version="2.21"))
    assert info.value.message.startswith("tensorflow 2.21 has no CUDA 12.2 build")


@pytest.mark.parametrize("driver, needle, hint", [
    ("32.0.15.6636", "Windows", "566.36"),
    ("0", "is not a version number", "nvidia-smi"),
    ("1e3", "is not a version number", "nvidia-smi"),
    ("550,54", "is not a version number", "nvidia-smi"),
    ("v550", "is not a version number", "nvidia-smi"),
    ("525", "a driver branch", "525.60.13"),
    ("450", "a driver branch", "nvidia-smi"),
    ("5500.54.15", "is not a version number", "nvidia-smi"),
    ("540.4.0.1", "is not a version number", "nvidia-smi"),
    ("540.", "is not a version number", "nvidia-smi"),
])
def test_driver_versions_that_are_not_nvidia_linux_drivers_are_refused(
        driver: str, needle: str, hint: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_build("torch", gpu(driver, "8.6"))
    assert needle in info.value.message and hint in (info.value.hint or "")


@pytest.mark.parametrize("driver", ["418.39", "535.104.05", "580.95.05", "470.256.02",
                                    "384.130", " 550.54.15 ", "540.4.0", "540.3.0"])
def test_real_driver_versions_are_accepted(driver: str) -> None:
    assert resolve_build("tensorflow", Target(driver=driver)).variant != "cpu"


def test_tensorflow_2_15_0_and_cuda_pins_the_post_release_pip_can_install() -> None:
    # tensorflow[and-cuda]==2.15.0 needs tensorrt-libs==8.6.1, not on PyPI; 2.15.0.post1 drops
    # it (tensorflow PR #62520, issue #66517)
    build = resolve_build("tensorflow", Target(driver="550.54.15", compute_capabilities=("8.6",),
                                               version="2.15.0"))
    assert build.requirements == ("tensorflow[and-cuda]==2.15.0.post1",)
    assert build.version == "2.15.0"  # what the project's ==2.15.0 admits


def test_tensorflow_2_14_and_cuda_is_not_chosen_for_python_3_11() -> None:
    # its and-cuda extra pins tensorrt==8.5.3.1, with no Python 3.11 wheels (tensorflow#61986)
    old = resolve_build("tensorflow", gpu("470.256.02", "6.1", python="3.11"))
    assert (old.version, old.variant) != ("2.14.1", "and-cuda")
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", Target(driver="470.256.02", compute_capabilities=("6.1",),
                                           python="3.11", version="2.14"))
    assert "its [and-cuda] extra installs on Python 3.9, 3.10 only, not 3.11" in \
        info.value.message
    fits = resolve_build("tensorflow", gpu("470.256.02", "6.1", python="3.10"))
    assert (fits.version, fits.variant) == ("2.14.1", "and-cuda")
    assert fits.python_versions == ("3.9", "3.10")


def test_only_a_probed_driver_skips_the_form_check() -> None:
    """`listed` says the driver listed the GPUs; that the driver came from nvidia-smi is said
    by ProbedDriver alone, which target_from_host (doctor) gives as the image build does."""
    facts = HostFacts(nvidia=NvidiaFacts(source="nvml", driver_version="1005.23.01",
                                         gpus=(GpuFacts(0, "A", "8.6"),)))
    target = target_from_host(facts)
    assert isinstance(target.driver, ProbedDriver)
    assert isinstance(normalize_target(target).driver, ProbedDriver)
    with pytest.raises(UsageError, match="is a driver branch"):
        normalize_target(Target(driver="525", compute_capabilities=("8.6",), listed=True))


def test_a_cuda_passed_over_for_its_ga_driver_names_that_driver() -> None:
    """Found by review: "cu132 would need driver >= their GA driver" named no version."""
    build = resolve_build("torch", gpu("580.95.05", "9.0"))
    assert build.variant == "cu130"
    assert ("cu132 would need driver >= 595.45.04, the GA driver of CUDA 13.2; cu130 runs "
            "without caveats") in build.reasons
