"""Parsers of nvidia-smi, NVML values, docker info, framework files: recorded outputs, fuzz."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbox.hostenv.parse import (
    SMI_QUERY_FIELDS_OLD,
    framework_from_probe_json,
    gpu_name_compute_capability,
    nvidia_from_nvml_record,
    parse_docker_info,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_q,
    parse_shm_size,
    parse_tf_build_info,
    parse_torch_version_py,
)
from dlbox.hostenv.probe import CommandOutput, RawHost, facts_from_raw
from dlbox.hostenv.rules import evaluate

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def test_csv_two_gpus_as_recorded() -> None:
    result = parse_nvidia_smi_csv((HOSTS / "two-gpus-mixed" / "nvidia-smi-query.csv").read_text())
    assert result.error is None
    assert result.driver_version == "560.35.03"
    assert [(g.name, g.compute_capability, g.memory_total_mib) for g in result.gpus] == [
        ("NVIDIA GeForce RTX 3090", "8.6", 24576),
        ("NVIDIA GeForce GTX 1080 Ti", "6.1", 11264),
    ]


def test_csv_without_compute_cap_uses_the_gpu_name() -> None:
    text = (HOSTS / "k80-driver470-smi-fallback" / "nvidia-smi-query.csv").read_text()
    result = parse_nvidia_smi_csv(text, SMI_QUERY_FIELDS_OLD)
    assert result.error is None
    assert [g.compute_capability for g in result.gpus] == ["3.7", "3.7"]
    assert result.driver_version == "470.256.02"


def test_csv_driver_library_mismatch_is_the_error() -> None:
    text = (HOSTS / "nvml-driver-library-mismatch" / "nvidia-smi-query.csv").read_text()
    result = parse_nvidia_smi_csv(text)
    assert result.error == "Failed to initialize NVML: Driver/library version mismatch"
    assert result.gpus == ()


def test_csv_unknown_field_and_other_failures() -> None:
    assert "not a valid field" in (
        parse_nvidia_smi_csv('Field "compute_cap" is not a valid field to query.\n').error or ""
    )
    failed = parse_nvidia_smi_csv(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make "
        "sure that the latest NVIDIA driver is installed and running.\n"
    )
    assert failed.error is not None and "couldn't communicate" in failed.error
    assert parse_nvidia_smi_csv("").error == "nvidia-smi printed no GPU"
    assert parse_nvidia_smi_csv("NVIDIA A10G, 8.6, 23028 MiB\n").error.startswith("unparsable")


def test_csv_not_available_values() -> None:
    result = parse_nvidia_smi_csv("NVIDIA A100-SXM4-40GB, [N/A], [N/A], 550.54.15\n")
    assert result.error is None
    gpu = result.gpus[0]
    assert gpu.compute_capability == "8.0"  # from the name
    assert gpu.memory_total_mib is None


def test_a_field_nvidia_smi_cannot_read_is_not_a_failure() -> None:
    """In containers and under MIG single fields read "[Unknown Error]"; the GPU is fine."""
    row = parse_nvidia_smi_csv("NVIDIA H200, 9.0, [Unknown Error], 580.159.03\n")
    assert row.error is None and row.gpus[0].name == "NVIDIA H200"
    assert row.gpus[0].memory_total_mib is None
    q = parse_nvidia_smi_q(
        (HOSTS / "two-gpus-mixed" / "nvidia-smi-q.txt").read_text()
        + "        Power Draw                        : [Unknown Error]\n")
    assert q.error is None and q.cuda_driver_version == "12.6"
    lost = parse_nvidia_smi_csv("NVIDIA H200, [GPU is lost], [GPU is lost], 580.159.03\n")
    assert lost.error is not None and "GPU is lost" in lost.error
    whole = parse_nvidia_smi_csv("Unable to determine the device handle for GPU0000:01:00.0: "
                                 "Unknown Error\n")
    assert whole.error is not None and whole.error.startswith("Unable to determine")


def test_q_text_two_gpus() -> None:
    result = parse_nvidia_smi_q((HOSTS / "two-gpus-mixed" / "nvidia-smi-q.txt").read_text())
    assert result.error is None
    assert result.driver_version == "560.35.03"
    assert result.cuda_driver_version == "12.6"
    assert [(g.name, g.memory_total_mib, g.pci_bus_id) for g in result.gpus] == [
        ("NVIDIA GeForce RTX 3090", 24576, "00000000:01:00.0"),
        ("NVIDIA GeForce GTX 1080 Ti", 11264, "00000000:02:00.0"),
    ]
    assert [g.compute_capability for g in result.gpus] == ["8.6", "6.1"]
    assert result.gpus[0].uuid == "GPU-5b3f0a36-8c5e-2e4a-0b7c-4d1f2e9a6c10"


def test_q_text_k80_driver_470() -> None:
    text = (HOSTS / "k80-driver470-smi-fallback" / "nvidia-smi-q.txt").read_text()
    result = parse_nvidia_smi_q(text)
    assert result.error is None
    assert (result.driver_version, result.cuda_driver_version) == ("470.256.02", "11.4")
    assert [(g.name, g.compute_capability, g.memory_total_mib) for g in result.gpus] == [
        ("Tesla K80", "3.7", 11441), ("Tesla K80", "3.7", 11441)]


def test_q_text_failure_and_garbage() -> None:
    text = ("Failed to initialize NVML: Driver/library version mismatch\n"
            "NVML library version: 535.183\n")
    mismatch = "Failed to initialize NVML: Driver/library version mismatch"
    assert parse_nvidia_smi_q(text).error == mismatch
    assert "no 'Driver Version'" in (parse_nvidia_smi_q("hello\nworld\n").error or "")


def test_nvml_record() -> None:
    record = json.loads((HOSTS / "healthy-gpu-rtx3090" / "nvml.json").read_text())
    facts = nvidia_from_nvml_record(record)
    assert facts.error is None
    assert (facts.driver_version, facts.cuda_driver_version) == ("535.104.05", "12.2")
    assert facts.gpus[0].compute_capability == "8.6"
    assert facts.gpus[0].memory_total_mib == 24576
    assert nvidia_from_nvml_record({"driver_version": None}).error == "NVML gave no driver version"
    assert nvidia_from_nvml_record("junk").error  # type: ignore[arg-type]


def test_docker_info_recorded_on_this_machine() -> None:
    facts = parse_docker_info((HOSTS / "cpu-only-host" / "docker-info.json").read_text())
    assert facts.reachable and facts.error is None
    assert facts.server_version == "20.10.24+dfsg1"
    assert "nvidia" not in facts.runtimes and "runc" in facts.runtimes
    assert not facts.gpu_capable


def test_docker_info_with_nvidia_runtime_and_cdi() -> None:
    facts = parse_docker_info((HOSTS / "healthy-gpu-rtx3090" / "docker-info.json").read_text())
    assert facts.nvidia_runtime
    cdi = parse_docker_info((HOSTS / "two-gpus-mixed" / "docker-info.json").read_text())
    assert cdi.cdi_spec_dirs == ("/etc/cdi", "/var/run/cdi")
    assert not cdi.nvidia_runtime


def test_docker_info_daemon_down() -> None:
    cli_text = json.dumps({"ServerErrors": ["Cannot connect to the Docker daemon at "
                                            "unix:///var/run/docker.sock. Is the docker daemon "
                                            "running?"]})
    facts = parse_docker_info(cli_text)
    assert not facts.reachable and "Cannot connect" in (facts.error or "")
    assert parse_docker_info("permission denied while trying to connect").error.startswith(
        "unparsable docker info")


def test_shm_sizes() -> None:
    assert parse_shm_size("64m") == 64
    assert parse_shm_size("2g") == 2048
    assert parse_shm_size("1073741824") == 1024
    assert parse_shm_size("lots") is None


def test_torch_version_py_and_tf_build_info() -> None:
    text = ("from typing import Optional\n__version__ = '2.5.1+cu124'\ndebug = False\n"
            "cuda: Optional[str] = '12.4'\ngit_version = 'abc'\n")
    assert parse_torch_version_py(text) == {"version": "2.5.1+cu124", "cuda": "12.4"}
    assert parse_torch_version_py("cuda: Optional[str] = None\n")["cuda"] is None
    info = parse_tf_build_info("import collections\nbuild_info = collections.OrderedDict()\n")
    assert info == {}
    # TF 2.4+: an OrderedDict of sorted pairs, as the generated file writes it
    info = parse_tf_build_info(
        "import collections\n\nbuild_info = collections.OrderedDict([('cuda_version', '11.8'), "
        "('cudnn_version', '8'), ('is_cuda_build', True), ('is_rocm_build', False)])\n")
    assert (info["cuda_version"], info["cudnn_version"], info["is_cuda_build"]) == ("11.8", "8",
                                                                                    True)
    assert parse_tf_build_info("build_info = collections.OrderedDict([1, 2])\n") == {}
    assert parse_tf_build_info("build_info = make_info('12.2')\n") == {}
    info = parse_tf_build_info("build_info = {'cuda_version': '12.2', 'cudnn_version': '8', "
                               "'is_cuda_build': True}\n")
    assert info["cuda_version"] == "12.2"
    assert parse_tf_build_info("build_info = {") == {}


def test_framework_probe_json() -> None:
    facts = framework_from_probe_json(
        "torch", (HOSTS / "new-gpu-old-torch" / "torch-probe.json").read_text())
    assert (facts.version, facts.cuda, facts.gpu_available) == ("2.6.0+cu124", "12.4", True)
    assert facts.arch_list[-1] == "sm_90"
    broken = framework_from_probe_json("torch", "Segmentation fault\n")
    assert broken.error and "unreadable torch probe output" in broken.error


def test_gpu_names() -> None:
    assert gpu_name_compute_capability("NVIDIA A10G") == "8.6"
    assert gpu_name_compute_capability("NVIDIA A100-SXM4-80GB") == "8.0"
    assert gpu_name_compute_capability("NVIDIA GeForce RTX 5090") == "12.0"
    assert gpu_name_compute_capability("Tesla T4") == "7.5"
    assert gpu_name_compute_capability("NVIDIA L40S") == "8.9"
    assert gpu_name_compute_capability("Mystery Accelerator 9000") is None


@pytest.mark.parametrize("name, cc", [
    # Turing Quadros: not an RTX 50 (sm_120) or RTX 40 (sm_89)
    ("Quadro RTX 5000", "7.5"), ("Quadro RTX 4000", "7.5"), ("Quadro RTX 8000", "7.5"),
    # Ada workstation cards: not an RTX 50 / RTX 20 / RTX 30
    ("NVIDIA RTX 5000 Ada Generation", "8.9"), ("NVIDIA RTX 2000 Ada Generation", "8.9"),
    ("NVIDIA RTX 3000 Ada Generation Laptop GPU", "8.9"), ("NVIDIA RTX 6000 Ada Generation", "8.9"),
    ("NVIDIA GeForce RTX 5080", "12.0"), ("NVIDIA GeForce RTX 2080 Ti", "7.5"),
])
def test_gpu_names_that_share_a_series_prefix(name: str, cc: str) -> None:
    assert gpu_name_compute_capability(name) == cc


def test_csv_fallback_on_a_turing_quadro_with_driver_470() -> None:
    # the compute_cap-less query of a 470 driver (format of the K80 recording)
    result = parse_nvidia_smi_csv("Quadro RTX 5000, 16125 MiB, 470.256.02\n",
                                  SMI_QUERY_FIELDS_OLD)
    assert result.error is None and result.gpus[0].compute_capability == "7.5"


# ------------------------------------------------------------------------------------------
# fuzz: nothing escapes, and a broken output becomes a "probe ... failed" finding

_smi_lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.lists(st.one_of(st.text(max_size=20), st.sampled_from(
            ["8.6", "[N/A]", "24576 MiB", "535.104.05", "NVIDIA GeForce RTX 3090", "", "x.y"])),
            min_size=1, max_size=6).map(", ".join),
    ),
    max_size=6,
).map("\n".join)

_q_text = st.lists(
    st.tuples(st.sampled_from(["", "    ", "        ", "\t"]),
              st.sampled_from(["Driver Version", "CUDA Version", "Product Name", "Total",
                               "FB Memory Usage", "GPU 00000000:01:00.0", "Bus Id"]),
              st.sampled_from([" : ", ":", " "]), st.text(max_size=20)),
    max_size=20,
).map(lambda rows: "\n".join(f"{a}{b}{c}{d}" for a, b, c, d in rows))

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["ServerVersion", "Runtimes", "CDISpecDirs",
                                       "DefaultRuntime", "ServerErrors", "x"]), children,
                      max_size=5),
    max_leaves=12,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=st.one_of(st.text(max_size=300), _smi_lines))
def test_fuzz_nvidia_smi_csv(text: str) -> None:
    result = parse_nvidia_smi_csv(text)
    assert (result.error is None) == bool(result.gpus)
    raw = RawHost(smi_path="/usr/bin/nvidia-smi",
                  smi_query=CommandOutput(("nvidia-smi",), output=text, returncode=0))
    facts = facts_from_raw(raw)
    if facts.nvidia.error:
        whats = [f.what for f in evaluate(facts)]
        assert any(w.startswith("probe nvidia-smi failed: ") for w in whats), whats
    else:
        assert facts.nvidia.gpus


@FUZZ
@given(text=st.one_of(st.text(max_size=300), _q_text))
def test_fuzz_nvidia_smi_q(text: str) -> None:
    result = parse_nvidia_smi_q(text)
    assert result.error is not None or result.gpus
    raw = RawHost(smi_path="/usr/bin/nvidia-smi",
                  smi_query=CommandOutput(("nvidia-smi",), output="garbage, 1", returncode=0),
                  smi_q=CommandOutput(("nvidia-smi", "-q"), output=text, returncode=0))
    facts = facts_from_raw(raw)
    assert facts.nvidia.error or facts.nvidia.gpus
    if facts.nvidia.error:
        assert any(f.what.startswith("probe nvidia-smi failed") for f in evaluate(facts))


@FUZZ
@given(data=st.one_of(st.text(max_size=200), _json_values, _json_values.map(json.dumps)))
def test_fuzz_docker_info(data: object) -> None:
    facts = parse_docker_info(data)
    assert facts.reachable == (facts.error is None)
    text = data if isinstance(data, str) else json.dumps(data)
    host = facts_from_raw(RawHost(docker_info=text))
    findings = evaluate(host)
    if not host.docker.reachable:
        assert any(f.what.startswith("probe docker failed: ") for f in findings)


@FUZZ
@given(record=_json_values)
def test_fuzz_nvml_record(record: object) -> None:
    facts = nvidia_from_nvml_record(record)
    assert facts.error is not None or facts.driver_version is not None


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_framework_files(text: str) -> None:
    parse_torch_version_py(text)
    parse_tf_build_info(text)
    facts = framework_from_probe_json("torch", text)
    assert facts.installed


def test_an_unreadable_docker_info_is_not_told_to_install_docker() -> None:
    """Found by review: a replayed docker-info.json that was not JSON got the fix "install
    Docker and start it"; an engine that answered is there, what it said is the problem. A
    refusal (permission denied) keeps the docker-group fix."""
    from dlbox.hostenv.facts import HostFacts
    from dlbox.hostenv.matrix import load_matrix
    from dlbox.hostenv.rules import rule_docker

    def fix_for(text: str) -> str:
        [finding] = rule_docker(HostFacts(docker=parse_docker_info(text)), load_matrix())
        return finding.fix or ""

    assert fix_for("{not json").startswith("run `docker info --format '{{json .}}'`")
    assert "docker group" in fix_for("permission denied while trying to connect")
