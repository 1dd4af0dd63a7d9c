"""Recordings of the wrong shape are refused up front, naming the file and the field."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dlbox.hostenv.probe import facts_from_raw, load_raw
from dlbox.hostenv.recording import RecordingError
from dlbox.hostenv.report import report_dict
from dlbox.hostenv.rules import evaluate

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
Mutation = Callable[[Any], Any]


def recording(tmp_path: Path, host: str, file: str, mutate: Mutation) -> Path:
    """A copy of a fixture host with one of its JSON files changed by `mutate`."""
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / host, folder)
    path = folder / file
    data = json.loads(path.read_text())
    path.write_text(json.dumps(mutate(data)))
    return folder


def setting(*keys: str | int, value: Any) -> Mutation:
    def mutate(data: Any) -> Any:
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return data
    return mutate


def dropping(key: str) -> Mutation:
    def mutate(data: Any) -> Any:
        del data[key]
        return data
    return mutate


HOST_JSON_CASES = [
    ("top-level list", lambda d: [d], "must hold a JSON object (system, commands, frameworks"
                                      ", ...), got a list"),
    ("top-level string", lambda d: "host", "must hold a JSON object"),
    ("top-level null", lambda d: None, "must hold a JSON object"),
    ("no system", dropping("system"), "has no 'system'"),
    ("no frameworks", dropping("frameworks"), "has no 'frameworks'"),
    ("commands list", setting("commands", value=["smi_q"]),
     "'commands' must be an object of command -> output (e.g. {\"smi_q\": {...}}), got a list"),
    ("commands null", setting("commands", value=None), "'commands' must be an object"),
    ("commands string", setting("commands", value="nvidia-smi -q"),
     "'commands' must be an object"),
    ("command entry list", setting("commands", "smi_q", value=["-q"]),
     "'commands.smi_q' must be an object with argv, returncode and error, got a list"),
    ("returncode as string", setting("commands", "smi_query", "returncode", value="0"),
     "'commands.smi_query.returncode' must be a whole number or null, got a string (\"0\")"),
    ("argv as string", setting("commands", "smi_query", "argv", value="nvidia-smi"),
     "'commands.smi_query.argv' must be a list of strings, got a string"),
    ("argv item null", setting("commands", "smi_q", "argv", 0, value=None),
     "'commands.smi_q.argv[0]' must be a string, got null"),
    ("system list", setting("system", value=[]), "'system' must be an object of system facts"),
    ("system null", setting("system", value=None), "'system' must be an object"),
    ("cpu_count as string", setting("system", "cpu_count", value="48"),
     "'system.cpu_count' must be a whole number >= 0 or null, got a string (\"48\")"),
    ("ram as float", setting("system", "ram_total_mib", value=1.5),
     "'system.ram_total_mib' must be a whole number >= 0 or null, got a number (1.5)"),
    ("disk negative", setting("system", "disk_free_mib", value=-1),
     "'system.disk_free_mib' must be a whole number >= 0"),
    ("shm as bool", setting("system", "shm_total_mib", value=True),
     "'system.shm_total_mib' must be a whole number >= 0 or null, got true"),
    ("os as list", setting("system", "os", value=["Ubuntu"]),
     "'system.os' must be a string or null, got a list"),
    ("python as number", setting("system", "python", value=3.12),
     "'system.python' must be a string or null, got a number (3.12)"),
    ("in_container as string", setting("system", "in_container", value="false"),
     "'system.in_container' must be true or false, got a string (\"false\")"),
    ("in_container null", setting("system", "in_container", value=None),
     "'system.in_container' must be true or false, got null"),
    ("unknown system key", setting("system", "gpu", value="RTX"),
     "'system' has unknown key(s) gpu"),
    ("smi_path number", setting("smi_path", value=1), "'smi_path' must be a string or null"),
    ("system_error list", setting("system_error", value=["x"]),
     "'system_error' must be a string or null"),
    ("cdi specs string", setting("cdi_nvidia_specs", value="/etc/cdi/nvidia.yaml"),
     "'cdi_nvidia_specs' must be a list of strings, got a string"),
    ("cdi spec item object", setting("cdi_nvidia_specs", 0, value={}),
     "'cdi_nvidia_specs[0]' must be a string, got an object"),
    ("seconds as string", setting("seconds", value="0.2"),
     "'seconds' must be a number of seconds >= 0 or null, got a string"),
    ("frameworks object", setting("frameworks", value={"torch": {}}),
     "'frameworks' must be a list of framework objects, got an object"),
    ("framework entry string", setting("frameworks", 0, value="torch"),
     "'frameworks[0]' must be an object with name, installed"),
    ("framework name null", setting("frameworks", 0, "name", value=None),
     "'frameworks[0].name' must be \"torch\" or \"tensorflow\" or \"jax\", got null"),
    ("framework name a path", setting("frameworks", 0, "name", value="../../etc/passwd"),
     "'frameworks[0].name' must be \"torch\""),
    ("framework twice", setting("frameworks", 1, "name", value="torch"),
     "'frameworks[1].name' repeats \"torch\""),
    ("installed as string", setting("frameworks", 0, "installed", value="yes"),
     "'frameworks[0].installed' must be true or false, got a string (\"yes\")"),
    ("dist_version as number", setting("frameworks", 0, "dist_version", value=2.9),
     "'frameworks[0].dist_version' must be a string or null, got a number (2.9)"),
    ("build_cuda as number", setting("frameworks", 0, "build_cuda", value=12.8),
     "'frameworks[0].build_cuda' must be a string or null, got a number (12.8)"),
    ("packages list", setting("frameworks", 0, "packages", value=["nvidia-cudnn-cu12"]),
     "'frameworks[0].packages' must be an object of package -> version, got a list"),
    ("package version null", setting("frameworks", 0, "packages", "nvidia-cudnn-cu12",
                                     value=None),
     "'frameworks[0].packages.nvidia-cudnn-cu12' must be a string, got null"),
]


@pytest.mark.parametrize("mutate, expected",
                         [case[1:] for case in HOST_JSON_CASES],
                         ids=[case[0] for case in HOST_JSON_CASES])
def test_host_json_of_the_wrong_shape_is_refused(tmp_path: Path, mutate: Mutation,
                                                 expected: str) -> None:
    folder = recording(tmp_path, "two-gpus-mixed", "host.json", mutate)
    with pytest.raises(RecordingError) as caught:
        load_raw(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'host.json'}: ")
    assert expected in message
    assert "\n" not in message


NVML_CASES = [
    ("top-level list", lambda d: d["gpus"], "must hold a JSON object (driver_version"),
    ("top-level null", lambda d: None, "must hold a JSON object"),
    ("driver as number", setting("driver_version", value=535.104),
     "'driver_version' must be a string, got a number (535.104)"),
    ("driver null", setting("driver_version", value=None),
     "'driver_version' must be a string, got null"),
    ("cuda as string", setting("cuda_driver_version", value="12.2"),
     "'cuda_driver_version' must be a whole number >= 0 or null, got a string (\"12.2\")"),
    ("gpus object", setting("gpus", value={"0": {}}),
     "'gpus' must be a list of GPU objects, got an object"),
    ("gpu string", setting("gpus", 0, value="RTX 3090"), "'gpus[0]' must be an object"),
    ("gpu name null", setting("gpus", 0, "name", value=None),
     "'gpus[0].name' must be a string, got null"),
    ("cc as string", setting("gpus", 0, "compute_capability", value="8.6"),
     "'gpus[0].compute_capability' must be [major, minor] (e.g. [8, 6]) or null, got a string"),
    ("cc of strings", setting("gpus", 0, "compute_capability", value=["8", "6"]),
     "'gpus[0].compute_capability' must be [major, minor]"),
    ("memory as string", setting("gpus", 0, "memory_total_bytes", value="24 GiB"),
     "'gpus[0].memory_total_bytes' must be a whole number >= 0 or null"),
    ("uuid as number", setting("gpus", 0, "uuid", value=7),
     "'gpus[0].uuid' must be a string or null, got a number (7)"),
]


@pytest.mark.parametrize("mutate, expected", [case[1:] for case in NVML_CASES],
                         ids=[case[0] for case in NVML_CASES])
def test_nvml_json_of_the_wrong_shape_is_refused(tmp_path: Path, mutate: Mutation,
                                                 expected: str) -> None:
    folder = recording(tmp_path, "healthy-gpu-rtx3090", "nvml.json", mutate)
    with pytest.raises(RecordingError) as caught:
        load_raw(folder)
    assert str(caught.value).startswith(f"{folder / 'nvml.json'}: ")
    assert expected in str(caught.value)


PROBE_CASES = [
    ("top-level list", lambda d: [d], "must hold the probe's JSON object"),
    ("version as number", setting("version", value=2.1),
     "'version' must be a string or null, got a number (2.1)"),
    ("cuda as number", setting("cuda", value=12.1), "'cuda' must be a string or null"),
    ("cudnn as list", setting("cudnn", value=[8, 9]),
     "'cudnn' must be a version (string or whole number) or null, got a list"),
    ("gpu_available as string", setting("gpu_available", value="true"),
     "'gpu_available' must be true or false, got a string"),
    ("visible_gpus as string", setting("visible_gpus", value="1"),
     "'visible_gpus' must be a whole number >= 0 or null, got a string (\"1\")"),
    ("arch_list as string", setting("arch_list", value="sm_86"),
     "'arch_list' must be a list of strings, got a string"),
    ("arch item number", setting("arch_list", 0, value=86),
     "'arch_list[0]' must be a string, got a number (86)"),
]


@pytest.mark.parametrize("mutate, expected", [case[1:] for case in PROBE_CASES],
                         ids=[case[0] for case in PROBE_CASES])
def test_probe_json_of_the_wrong_shape_is_refused(tmp_path: Path, mutate: Mutation,
                                                  expected: str) -> None:
    folder = recording(tmp_path, "healthy-gpu-rtx3090", "torch-probe.json", mutate)
    with pytest.raises(RecordingError) as caught:
        load_raw(folder)
    assert str(caught.value).startswith(f"{folder / 'torch-probe.json'}: ")
    assert expected in str(caught.value)


@pytest.mark.parametrize("file, content, expected", [
    ("host.json", b"", "not valid JSON (Expecting value at line 1 column 1)"),
    ("host.json", b'{"system": {}, ', "not valid JSON"),
    ("host.json", b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
    ("host.json", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ("host.json", b'{"system": {"cpu_count": ' + b"9" * 5000 + b"}}", "not valid JSON"),
    ("nvml.json", b"NVML unavailable", "not valid JSON"),
    ("nvml.json", b"null", "must hold a JSON object"),
    ("nvidia-smi-q.txt", b"\xc3\x28", "not UTF-8 text"),
])
def test_unreadable_files_are_named(tmp_path: Path, file: str, content: bytes,
                                    expected: str) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "healthy-gpu-rtx3090", folder)
    (folder / file).write_bytes(content)
    with pytest.raises(RecordingError) as caught:
        load_raw(folder)
    assert str(caught.value).startswith(f"{folder / file}: ")
    assert expected in str(caught.value)


def test_a_folder_in_place_of_a_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "healthy-gpu-rtx3090", folder)
    (folder / "nvml.json").unlink()
    (folder / "nvml.json").mkdir()
    with pytest.raises(RecordingError, match="nvml.json: is a folder, not a file"):
        load_raw(folder)


@pytest.mark.parametrize("mutate", [
    dropping("commands"), dropping("seconds"), dropping("smi_path"),
    setting("seconds", value=0), setting("smi_path", value=None),
    setting("system", value={}), setting("frameworks", value=[]),
    setting("system", "cpu_count", value=None), setting("frameworks", 0, "packages", value=None),
    setting("commands", "smi_q", value=None), setting("commands", "nvidia_smi_l", value=[1]),
    setting("a_newer_key", value=[1, 2]),
], ids=["no commands", "no seconds", "no smi_path", "seconds 0", "smi_path null",
        "system empty", "frameworks empty", "cpu_count null", "packages null",
        "command null", "unknown command", "unknown top-level key"])
def test_valid_variants_still_load(tmp_path: Path, mutate: Mutation) -> None:
    folder = recording(tmp_path, "two-gpus-mixed", "host.json", mutate)
    evaluate(facts_from_raw(load_raw(folder)))


def test_probe_output_that_is_not_json_replays_as_a_probe_failure(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "healthy-gpu-rtx3090", folder)
    (folder / "torch-probe.json").write_text("Segmentation fault (core dumped)\n")
    facts = facts_from_raw(load_raw(folder))
    assert any(f.probe == "torch" and "unreadable torch probe output" in f.why
               for f in facts.failures)


def test_every_fixture_is_a_valid_recording() -> None:
    hosts = sorted(p for p in HOSTS.iterdir() if (p / "host.json").is_file())
    assert len(hosts) >= 10
    for host in hosts:
        load_raw(host)


# ------------------------------------------------------------------------------------------
# a sweep: every field of a real recording's JSON files, set to every wrong kind of value,
# is either refused with a RecordingError or replays cleanly (facts, rules, report)

WRONG_VALUES: list[Any] = [[], ["x"], "", "12.0", 7, -1, 1.5, True, None, {}, {"a": 1}]


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("host, file", [
    ("two-gpus-mixed", "host.json"), ("healthy-gpu-rtx3090", "nvml.json"),
    ("healthy-gpu-rtx3090", "torch-probe.json"), ("tensorflow-cuda-mismatch", "host.json"),
])
def test_no_wrong_shape_gets_past_the_loader_as_a_crash(tmp_path: Path, host: str,
                                                        file: str) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / host, folder)
    original = json.loads((folder / file).read_text())
    refused = 0
    for path in _paths(original):
        for value in WRONG_VALUES:
            (folder / file).write_text(json.dumps(_replace(original, path, value)))
            try:
                raw = load_raw(folder)
            except RecordingError:
                refused += 1
                continue
            facts = facts_from_raw(raw)
            json.dumps(report_dict(facts, evaluate(facts)))
    assert refused > 0
