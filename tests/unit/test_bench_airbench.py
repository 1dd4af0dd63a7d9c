"""benchmarks/airbench_side_by_side.py: the parts that need no GPU (and no airbench code).

The module is imported by path (benchmarks/ is no package). The table samples below are
written by hand in the format airbench's scripts print; the end-to-end tests run the
harness's own CPU stand-in for airbench (--write-fake-script), never airbench itself.
"""

# ruff: noqa: E501  (the recorded table lines are as wide as airbench prints them)

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import load_benchmark

from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.data.synthetic import write_fake_cifar10
from dlbox.errors import UsageError

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "airbench_side_by_side.py"


bench = load_benchmark("airbench_side_by_side")

# airbench94_muon.py's table: a header, the warm-up run, then one block per run; the run
# number only on a run's first row; the `eval` row closes the run with tta_val_acc and
# time_seconds; at the end its Mean / Std line and the path of its log.
MUON_SAMPLE = """\
--------------------------------------------------------------------------------
|  run     |  epoch  |  train_acc  |  val_acc  |  tta_val_acc  |  time_seconds  |
--------------------------------------------------------------------------------
|  warmup  |      0  |     0.1035  |   0.1000  |               |       41.2001  |
|          |      1  |     0.0990  |   0.1000  |               |       41.5120  |
|          |   eval  |     0.0990  |   0.1000  |       0.1012  |       41.6003  |
--------------------------------------------------------------------------------
|       0  |      0  |     0.5210  |   0.5812  |               |        0.3370  |
|          |      1  |     0.6620  |   0.7005  |               |        0.6521  |
|          |      2  |     0.7215  |   0.7710  |               |        0.9650  |
|          |      3  |     0.7630  |   0.8215  |               |        1.2811  |
|          |      4  |     0.7960  |   0.8633  |               |        1.5950  |
|          |      5  |     0.8195  |   0.8990  |               |        1.9105  |
|          |      6  |     0.8420  |   0.9201  |               |        2.2240  |
|          |      7  |     0.8655  |   0.9358  |               |        2.5102  |
|          |   eval  |     0.8655  |   0.9358  |       0.9411  |        2.5931  |
--------------------------------------------------------------------------------
|       1  |      0  |     0.5190  |   0.5790  |               |        0.3344  |
|          |      1  |     0.6645  |   0.7041  |               |        0.6490  |
|          |      2  |     0.7190  |   0.7733  |               |        0.9631  |
|          |      3  |     0.7611  |   0.8190  |               |        1.2790  |
|          |      4  |     0.7975  |   0.8650  |               |        1.5932  |
|          |      5  |     0.8180  |   0.8977  |               |        1.9088  |
|          |      6  |     0.8445  |   0.9188  |               |        2.2231  |
|          |      7  |     0.8630  |   0.9345  |               |        2.5077  |
|          |   eval  |     0.8630  |   0.9345  |       0.9389  |        2.5890  |
--------------------------------------------------------------------------------
Mean: 0.9400    Std: 0.0016
/tmp/work/logs/7f0c2a4e-1b9d-4a51-9a70-2f9d3b3c0a11/log.pt
"""

# airbench96_faster.py: no warm-up run, an extra train_loss column, total_time_seconds,
# and lines of its own between the rows.
FASTER_SAMPLE = """\
-----------------------------------------------------------------------------------------
|  run     |  epoch  |  train_loss  |  train_acc  |  val_acc  |  tta_val_acc  |  total_time_seconds  |
-----------------------------------------------------------------------------------------
Main model parameters: 7453066
Training small proxy...
Proxy parameters: 312970
|       0  |      0  |      0.9120  |     0.6621  |   0.6755  |               |              9.9120  |
|          |     44  |      0.2101  |     0.9903  |   0.9571  |               |             27.1033  |
|          |   eval  |      0.2101  |     0.9903  |   0.9571  |       0.9605  |             27.4410  |
-----------------------------------------------------------------------------------------
Main model parameters: 7453066
Mean: 0.9605    Std: nan
"""

MUON_TAIL = """    print_columns(logging_columns_list, is_head=True)
    main("warmup", model)
    accs = torch.tensor([main(run, model) for run in range(200)])
    print("Mean: %.4f    Std: %.4f" % (accs.mean(), accs.std()))
"""


# ---- the data files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("abdata")
    write_fake_cifar10(root, n_train=60, n_test=30, seed=3)
    return root


def test_data_files_have_airbench_layout_and_dlbox_content(data_dir: Path,
                                                           tmp_path: Path) -> None:
    train, test = bench.load_dlbox_splits(data_dir, 50, None)
    assert train.images.shape[1:] == (3, 32, 32)  # dlbox's own form: NCHW
    written = bench.write_airbench_data(tmp_path, train, test)
    for name, source, count in (("train", train, 50), ("test", test, 30)):
        path = tmp_path / "cifar10" / f"{name}.pt"
        data = torch.load(path, weights_only=True)  # how torch >= 2.6 loads it by default
        assert set(data) == {"images", "labels", "classes"}
        images, labels = data["images"], data["labels"]
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert tuple(images.shape) == (count, 32, 32, 3)  # NHWC
        assert images.is_contiguous()
        assert torch.equal(labels, source.labels)
        assert torch.equal(images, source.images.permute(0, 2, 3, 1))
        # one pixel by hand: image 7, row 5, column 11, blue
        assert images[7, 5, 11, 2] == source.images[7, 2, 5, 11]
        assert data["classes"] == list(CIFAR10_CLASSES)
        # a subset is saved on its own, not as a view of the whole split
        assert images.untyped_storage().nbytes() == count * 32 * 32 * 3
        assert written[name]["shape"] == [count, 32, 32, 3]
        assert written[name]["images"] == count
    assert written["train"]["images_sha256"] != written["test"]["images_sha256"]


# ---- the run count ----------------------------------------------------------------------------

def test_patch_run_count_sets_the_one_run_loop() -> None:
    patched, original = bench.patch_run_count(MUON_TAIL, 10)
    assert original == 200
    assert "for run in range(10)]" in patched and "range(200)" not in patched
    assert patched.replace("range(10)", "range(200)") == MUON_TAIL  # nothing else changed


def test_patch_run_count_reads_a_loop_split_over_lines() -> None:
    source = ("    accs = torch.tensor([main(run, hyp, model_proxy, model_trainbias)\n"
              "                         for run in range(10)])\n")
    patched, original = bench.patch_run_count(source, 3)
    assert original == 10 and "for run in range(3)])" in patched


@pytest.mark.parametrize("source, what", [
    ("accs = torch.tensor([main(r, model) for r in range(200)])\n", "no"),
    (MUON_TAIL + MUON_TAIL, "2"),
])
def test_patch_run_count_fails_clearly(source: str, what: str) -> None:
    with pytest.raises(bench.HarnessError, match=rf"has {what} `for run in range\(N\)`"):
        bench.patch_run_count(source, 10)


def test_patch_run_count_refuses_zero_runs() -> None:
    with pytest.raises(bench.HarnessError, match="at least 1"):
        bench.patch_run_count(MUON_TAIL, 0)


def test_prepare_script_copies_the_patched_script(tmp_path: Path) -> None:
    script = tmp_path / "src" / "airbench94_muon.py"
    script.parent.mkdir()
    script.write_text(MUON_TAIL)
    work = tmp_path / "work"
    work.mkdir()
    target, original, sha = bench.prepare_script(script, work, 4)
    assert target == work / "airbench94_muon.py" and original == 200
    assert "range(4)" in target.read_text() and script.read_text() == MUON_TAIL
    assert len(sha) == 64


# ---- the table --------------------------------------------------------------------------------

def test_parse_output_reads_each_run_apart_from_the_warmup() -> None:
    lines = MUON_SAMPLE.splitlines()
    parsed = bench.parse_output(lines, [float(i) for i in range(len(lines))])
    assert parsed["time_column"] == "time_seconds"
    assert [r["run"] for r in parsed["runs"]] == [0, 1]
    first, second = parsed["runs"]
    assert (first["tta_val_acc"], first["time_seconds"], first["val_acc"]) == (0.9411, 2.5931,
                                                                                0.9358)
    assert (second["tta_val_acc"], second["time_seconds"]) == (0.9389, 2.5890)
    assert first["epochs"] == 8 and second["epochs"] == 8
    assert first["finished_at_s"] == float(lines.index(
        "|          |   eval  |     0.8655  |   0.9358  |       0.9411  |        2.5931  |"))
    assert parsed["warmup"]["tta_val_acc"] == 0.1012 and parsed["warmup"]["epochs"] == 2
    assert parsed["mean_line"] == {"mean": 0.94, "std": 0.0016}
    assert parsed["incomplete_runs"] == []
    summary = bench.summarize_runs(parsed["runs"])
    assert summary["tta_val_acc"]["mean"] == pytest.approx(0.94)
    assert summary["time_seconds"]["mean"] == pytest.approx((2.5931 + 2.5890) / 2)
    assert summary["time_seconds"]["min"] == 2.5890 and summary["time_seconds"]["max"] == 2.5931
    assert summary["tta_val_acc"]["std"] == pytest.approx(0.0015556, abs=1e-6)
    assert summary["tta_val_acc"]["n"] == 2


def test_parse_output_reads_the_longer_scripts_columns() -> None:
    parsed = bench.parse_output(FASTER_SAMPLE.splitlines())
    assert parsed["time_column"] == "total_time_seconds"
    assert parsed["warmup"] is None
    assert parsed["runs"] == [{"run": 0, "tta_val_acc": 0.9605, "val_acc": 0.9571,
                               "train_acc": 0.9903, "time_seconds": 27.441, "epochs": 2,
                               "finished_at_s": None}]
    assert parsed["mean_line"] == {"mean": 0.9605, "std": None}  # nan from one run


def test_parse_output_keeps_only_finished_runs_of_a_cut_off_table() -> None:
    lines = MUON_SAMPLE.splitlines()
    cut = lines[: lines.index("|       1  |      0  |     0.5190  |   0.5790  |"
                              "               |        0.3344  |") + 3]
    parsed = bench.parse_output(cut)
    assert [r["run"] for r in parsed["runs"]] == [0]
    assert parsed["incomplete_runs"] == ["1"] and parsed["mean_line"] is None


def test_parse_output_without_a_table() -> None:
    parsed = bench.parse_output(["Traceback (most recent call last):", "RuntimeError: no GPU"])
    assert parsed["runs"] == [] and parsed["columns"] is None
    assert bench.summarize_runs([])["time_seconds"]["mean"] is None
    with pytest.raises(bench.HarnessError, match="header"):
        bench.parse_output(["|  run  |  epoch  |  val_acc  |"])


# ---- side by side -----------------------------------------------------------------------------

def dlbox_doc(time_mean: float, tta_mean: float, runs: int = 10) -> dict:
    """The parts of benchmarks/time_to_accuracy.py's --json the comparison reads."""
    def stat(mean: float) -> dict:
        return {"mean": mean, "std": 0.001, "min": mean, "max": mean}
    return {"benchmark": "time_to_accuracy", "model": "speedrun", "device": "cuda",
            "settings": {"runs": runs, "num_train": 50000, "num_test": 10000},
            "environment": {"data_checksum": "abc"},
            "runs": [{"run": i + 1} for i in range(runs)],
            "summary": {"time_seconds": stat(time_mean), "tta_accuracy": stat(tta_mean),
                        "accuracy": stat(tta_mean - 0.01)}}


def test_compare_gives_the_time_ratio_and_both_accuracies() -> None:
    summary = bench.summarize_runs(bench.parse_output(MUON_SAMPLE.splitlines())["runs"])
    comparison = bench.compare(summary, dlbox_doc(1.5, 0.9412))
    airbench_time = (2.5931 + 2.5890) / 2
    assert comparison["time_seconds_ratio"] == pytest.approx(1.5 / airbench_time)
    assert comparison["dlbox"]["tta_accuracy_mean"] == 0.9412
    assert comparison["airbench"]["tta_accuracy_mean"] == pytest.approx(0.94)
    assert comparison["airbench"]["runs"] == 2 and comparison["dlbox"]["runs"] == 10
    text = "\n".join(bench.comparison_lines(comparison, "airbench94_muon.py"))
    assert f"time_seconds ratio dlbox / airbench: {1.5 / airbench_time:.3f}" in text
    assert "94.12%" in text and "94.00%" in text
    notes = bench.same_data_notes(comparison, 50000, 10000, "other")
    assert notes == ["the data dirs' checksums differ: not the same data"]
    assert bench.same_data_notes(comparison, 50000, 10000, "abc") == []
    # Found by review: converted or synthetic data has no checksum, so two runs on different
    # data went unnoticed; the folders are compared then.
    comparison["dlbox"]["data_checksum"], comparison["dlbox"]["data_dir"] = None, "/a"
    assert bench.same_data_notes(comparison, 50000, 10000, None, "/b") == [
        "different data dirs: dlbox read /a, the script's data came from /b (no checksum tells "
        "whether they hold the same images)"]
    assert bench.same_data_notes(comparison, 50000, 10000, None, "/a") == []


@pytest.mark.parametrize("damage", ["no time", "time of another shape", "not an object"])
def test_a_dlbox_json_without_its_mean_time_is_refused_when_read(tmp_path: Path,
                                                                 damage: str) -> None:
    """compare() needs the dlbox mean time; read_dlbox_json, before the script runs, is the
    one check of it (compare checked it again after the runs, an exit status 3 that nothing
    but a file changed meanwhile could reach)."""
    doc: object = dlbox_doc(1.5, 0.94)
    assert isinstance(doc, dict)
    if damage == "no time":
        del doc["summary"]["time_seconds"]
    elif damage == "time of another shape":
        doc["summary"]["time_seconds"] = [1.5]
    else:
        doc = [doc]
    path = tmp_path / "dlbox.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"has no summary\.time_seconds\.mean") as caught:
        bench.read_dlbox_json(path)
    assert "time_to_accuracy.py" in (caught.value.hint or "")
    summary = bench.summarize_runs(bench.parse_output(MUON_SAMPLE.splitlines())["runs"])
    assert bench.compare(summary, bench.read_dlbox_json(_written(tmp_path, dlbox_doc(
        1.5, 0.94))))["time_seconds_ratio"] == pytest.approx(1.5 / summary["time_seconds"]["mean"])


def _written(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(doc))
    return path


def test_torchvision_shim_normalizes_like_the_formula(tmp_path: Path) -> None:
    folder = bench.write_torchvision_shim(tmp_path)
    spec = importlib.util.spec_from_file_location("shim_transforms",
                                                  folder / "torchvision" / "transforms.py")
    assert spec is not None and spec.loader is not None
    transforms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transforms)
    x = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor((0.4914, 0.4822, 0.4465)), torch.tensor((0.247, 0.2435, 0.2616))
    out = transforms.Normalize(mean, std)(x)
    assert torch.allclose(out, (x - mean.view(3, 1, 1)) / std.view(3, 1, 1))
    assert not torch.equal(out, x)  # a copy; the input is left alone
    assert (folder / "torchvision" / "__init__.py").is_file()


# ---- the whole harness, on the CPU stand-in -----------------------------------------------------

@pytest.mark.slow
def test_main_runs_a_script_on_dlbox_data_and_writes_the_json(data_dir: Path,
                                                              tmp_path: Path) -> None:
    fake = bench.write_fake_script(tmp_path / "fake_airbench.py")
    assert "for run in range(200)" in fake.read_text()
    dlbox_json = tmp_path / "speedrun.json"
    dlbox_json.write_text(json.dumps(dlbox_doc(0.004, 0.5)))
    out = tmp_path / "airbench.json"
    status = bench.main(["--script", str(fake), "--runs", "2", "--data", str(data_dir),
                         "--num-train", "40", "--num-test", "20", "--quiet", "--timeout", "120",
                         "--dlbox-json", str(dlbox_json), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert status == 0 and doc["returncode"] == 0 and doc["stopped_by"] is None
    assert doc["script_run_count"] == 200 and doc["runs_requested"] == 2
    assert [r["run"] for r in doc["runs"]] == [0, 1] and doc["warmup"]["run"] == "warmup"
    assert any("layout ok, 40 train / 20 test images" in line for line in doc["output_tail"])
    assert doc["data_files"]["train"]["shape"] == [40, 32, 32, 3]
    assert doc["wall_seconds"] > 0 and doc["num_train"] == 40
    for run in doc["runs"]:
        assert 0.0 <= run["tta_val_acc"] <= 1.0 and run["time_seconds"] > 0
    mean_time = sum(r["time_seconds"] for r in doc["runs"]) / 2
    assert doc["summary"]["time_seconds"]["mean"] == pytest.approx(mean_time)
    assert doc["comparison"]["time_seconds_ratio"] == pytest.approx(0.004 / mean_time)
    notes = doc["comparison"]["notes"]
    assert any(note.startswith("different data sizes") for note in notes), notes


@pytest.mark.slow
def test_timeout_stops_the_script_and_keeps_finished_runs(data_dir: Path,
                                                          tmp_path: Path) -> None:
    script = tmp_path / "slow_airbench.py"
    header = MUON_SAMPLE.splitlines()[:3]
    run0 = [line for line in MUON_SAMPLE.splitlines()[7:17]]
    script.write_text(
        "import time\n"
        f"HEAD = {header!r}\nRUN0 = {run0!r}\n"
        "print('\\n'.join(HEAD), flush=True)\n"
        "def main(run):\n"
        "    if run > 0:\n"
        "        time.sleep(600)\n"
        "    print('\\n'.join(RUN0), flush=True)\n"
        "accs = [main(run) for run in range(200)]\n")
    out = tmp_path / "airbench.json"
    dlbox_json = _written(tmp_path, dlbox_doc(1.5, 0.94))
    status = bench.main(["--script", str(script), "--runs", "3", "--data", str(data_dir),
                         "--num-train", "20", "--num-test", "10", "--quiet",
                         "--timeout", "3", "--dlbox-json", str(dlbox_json), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert status == 1 and doc["stopped_by"] == "timeout" and doc["returncode"] != 0
    assert [r["tta_val_acc"] for r in doc["runs"]] == [0.9411]
    assert doc["wall_seconds"] < 60
    # the ratio of 1 run where 3 were asked says so (review: nothing told it was cut short)
    assert "airbench was stopped (timeout): 1 of 3 runs asked finished; the ratio rests on " \
        "those" in doc["comparison"]["notes"]


# ---- bad input: one error line and a hint, before the script runs, no JSON ---------------------

def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, check=False)


# Found in review: --num-test 0 ran and reported nan with exit 0, --num-train -5 took all but
# 5 images, a missing --python or a file as --keep-work-dir ended in a traceback, and a
# --dlbox-json that cannot be read was found only after the script's runs.
@pytest.mark.parametrize("case", ["missing-data", "unwritable-json", "num-train-too-big",
                                  "num-train-negative", "num-test-zero", "missing-python",
                                  "work-dir-a-file", "missing-dlbox-json", "dlbox-json-no-time"])
def test_bad_input_is_an_error_and_a_hint_without_a_traceback(case: str, data_dir: Path,
                                                               tmp_path: Path) -> None:
    fake = bench.write_fake_script(tmp_path / "fake_airbench.py")
    out = tmp_path / "airbench.json"
    args = ["--script", str(fake), "--runs", "1", "--data", str(data_dir), "--quiet",
            "--json", str(out)]
    if case == "missing-data":
        args[args.index(str(data_dir))] = str(tmp_path / "no-such-data")
    elif case == "unwritable-json":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        out = blocker / "airbench.json"  # under a file: never writable
        args[-1] = str(out)
    elif case == "dlbox-json-no-time":
        (tmp_path / "dlbox.json").write_text('{"summary": []}')
        args += ["--dlbox-json", str(tmp_path / "dlbox.json")]
    else:
        args += {"num-train-too-big": ["--num-train", "100000"],
                 "num-train-negative": ["--num-train", "-5"],
                 "num-test-zero": ["--num-test", "0"],
                 "missing-python": ["--python", str(tmp_path / "no-python")],
                 "work-dir-a-file": ["--keep-work-dir", str(fake)],
                 "missing-dlbox-json": ["--dlbox-json", str(tmp_path / "none.json")]}[case]
    proc = _harness(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), proc.stderr
    assert "airbench side by side:" not in proc.stdout  # stopped before the script started
    assert not out.exists()


@pytest.mark.parametrize("value", ["-1", "inf", "1e300", "nan"])
def test_timeout_must_be_positive_and_finite(data_dir: Path, tmp_path: Path,
                                             value: str) -> None:
    """inf and 1e300 (review) were accepted, the timer thread failed on them (a traceback)
    and the script ran with no limit."""
    fake = bench.write_fake_script(tmp_path / "fake_airbench.py")
    proc = _harness("--script", str(fake), "--data", str(data_dir), "--timeout", value)
    assert proc.returncode == 2 and "--timeout must be more than 0 seconds and at most" \
        in proc.stderr and "Traceback" not in proc.stderr


def test_versions_are_those_of_the_python_that_runs_the_script(tmp_path: Path) -> None:
    # --python may be airbench's own environment: the JSON used to record the harness's
    # torch.__version__ as if the script had run on it
    fake_torch = tmp_path / "site" / "torch"
    fake_torch.mkdir(parents=True)
    (fake_torch / "__init__.py").write_text(
        "__version__ = '9.9.9+other'\n"
        "class version:\n    cuda = '12.9'\n"
        "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n")
    python = tmp_path / "other-python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'site'} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    found = bench.script_versions(str(python))
    assert found["torch"] == "9.9.9+other" and found["cuda"] == "12.9" and found["gpu"] is None
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert bench.script_versions(str(tmp_path / "no-such-python"))["torch"] is None


@pytest.mark.slow
def test_the_json_records_the_script_python_and_the_host(data_dir: Path, tmp_path: Path) -> None:
    fake = bench.write_fake_script(tmp_path / "fake_airbench.py")
    out = tmp_path / "airbench.json"
    assert bench.main(["--script", str(fake), "--runs", "1", "--data", str(data_dir),
                       "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["torch"] == torch.__version__ and doc["python_version"]
    for key in ("device_name", "cpu_cores", "platform", "dlbox"):
        assert doc["environment"].get(key) is not None, key


def test_a_dlbox_json_from_other_hardware_gets_a_note() -> None:
    # a speedrun.json measured on the CPU (or another GPU) gave a ratio with no word of it
    doc = {"environment": {"device_name": "AMD EPYC (2 cores)"}}
    notes = bench.same_hardware_notes(doc, "NVIDIA H200")
    assert len(notes) == 1 and notes[0].startswith("different hardware: dlbox ran on AMD EPYC")
    assert bench.same_hardware_notes(doc, "AMD EPYC (2 cores)") == []
    assert bench.same_hardware_notes({}, "NVIDIA H200") == []  # nothing recorded: no claim


def test_a_partial_dlbox_json_gets_a_note() -> None:
    # time_to_accuracy.py stopped by its step's limit keeps its finished runs, marked partial
    doc = dlbox_doc(1.5, 0.94, runs=4)
    assert bench.partial_notes(doc) == []
    doc["partial"] = {"interrupted": "after 4 of 10 run(s)", "runs_finished": 4,
                      "runs_asked": 10}
    notes = bench.partial_notes(doc)
    assert len(notes) == 1 and "partial: 4 of 10 runs finished" in notes[0]


def test_compare_counts_only_the_dlbox_runs_behind_its_mean() -> None:
    doc = dlbox_doc(1.5, 0.94, runs=10)
    for run in doc["runs"][:3]:
        run["failed"] = "train loss nan in epoch 2"  # out of time_to_accuracy's summary
    airbench = {"time_seconds": {"mean": 2.0}, "tta_val_acc": {"mean": 0.94, "n": 10}}
    assert bench.compare(airbench, doc)["dlbox"]["runs"] == 7


def test_a_work_dir_holding_the_script_is_refused_and_the_script_kept(
        data_dir: Path, tmp_path: Path) -> None:
    """Found by review: --keep-work-dir of the script's own folder replaced the script with its
    patched copy (run count 200 -> 2): airbench94_muon.py must stay as published."""
    script = bench.write_fake_script(tmp_path / "ab.py")
    before = script.read_text()
    proc = _harness("--script", str(script), "--runs", "2", "--data", str(data_dir),
                    "--keep-work-dir", str(tmp_path), "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: --keep-work-dir {tmp_path} holds the script ab.py, which its patched copy "
        "would replace",
        "hint: pass a folder of its own, e.g. --keep-work-dir airbench-work"]
    assert script.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "ab.py"]


def test_a_script_without_a_run_loop_is_refused_before_the_data_is_written(
        data_dir: Path, tmp_path: Path) -> None:
    """Found by review: the data went into --keep-work-dir first, and stayed after the
    script (no `for run in range(N)`) was refused."""
    script = tmp_path / "env.sh"
    script.write_text("echo not airbench\n")
    work = tmp_path / "work"
    proc = _harness("--script", str(script), "--runs", "1", "--data", str(data_dir),
                    "--keep-work-dir", str(work), "--quiet")
    assert proc.returncode == 2 and "for run in range" in proc.stderr, proc.stderr
    assert not any(work.rglob("*.pt")), sorted(work.rglob("*"))


@pytest.mark.parametrize("flag", ["--keep-work-dir", "--json", "--dlbox-json", "--data"])
def test_an_empty_path_flag_is_refused_not_the_current_folder(
        data_dir: Path, tmp_path: Path, flag: str) -> None:
    script = bench.write_fake_script(tmp_path / "ab.py")
    args = ["--script", str(script), "--runs", "1", "--data", str(data_dir), "--quiet"]
    if flag == "--data":
        args[args.index("--data") + 1] = ""
    else:
        args += [flag, ""]
    proc = _harness(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {flag} was given an empty path\nhint: ")


@pytest.mark.parametrize("case", ["folder", "binary-script"])
def test_bad_scripts_and_fake_script_paths_are_errors_with_hints(tmp_path: Path,
                                                                 data_dir: Path,
                                                                 case: str) -> None:
    """Found by review: these ended in IsADirectoryError / UnicodeDecodeError tracebacks."""
    if case == "folder":
        proc = _harness("--write-fake-script", str(tmp_path))
    else:
        (tmp_path / "red.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        proc = _harness("--script", str(tmp_path / "red.png"), "--data", str(data_dir),
                        "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_table_the_harness_cannot_read_is_a_failed_run_with_its_json(
        data_dir: Path, tmp_path: Path) -> None:
    """Found by review: a script whose table lacked airbench's columns was found only after
    it ran, and ended with exit 2 ("bad input") and no JSON."""
    script = tmp_path / "other.py"
    script.write_text("for run in range(3):\n    pass\nprint('| run | epoch | val_acc | secs |')\n"
                      "print('| 0 | eval | 0.5 | 1.0 |')\n")
    out = tmp_path / "out.json"
    proc = _harness("--script", str(script), "--runs", "1", "--data", str(data_dir),
                    "--quiet", "--json", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "error: cannot read the script's table: table header without" in proc.stderr
    document = json.loads(out.read_text())
    assert document["returncode"] == 0 and document["runs"] == []
    assert document["table_error"].startswith("table header without")


def test_a_link_to_the_script_in_the_work_dir_is_replaced_not_written_through(
        tmp_path: Path) -> None:
    """Found by review: a work dir holding a link to the script passed the check, and the
    patched copy was written through the link into the script itself."""
    original = bench.write_fake_script(tmp_path / "src" / "air.py")
    before = original.read_text()
    work = tmp_path / "work"
    work.mkdir()
    (work / "air.py").symlink_to(original)
    target, runs, _ = bench.prepare_script(work / "air.py", work, 3)
    assert original.read_text() == before and runs == 200
    assert not target.is_symlink() and "range(3)" in target.read_text()


def test_the_harness_own_json_as_dlbox_json_is_refused(tmp_path: Path) -> None:
    """Found by review: airbench.json (beside speedrun.json in $OUT) has a mean time too, and
    was taken as dlbox's: a "dlbox / airbench" ratio of airbench against itself, exit 0."""
    path = tmp_path / "airbench.json"
    path.write_text(json.dumps({"benchmark": "airbench_side_by_side",
                                "summary": {"time_seconds": {"mean": 2.0}}}))
    with pytest.raises(UsageError) as caught:
        bench.read_dlbox_json(path)
    assert caught.value.message == (f"--dlbox-json {path} is not time_to_accuracy.py's output "
                                    "(airbench_side_by_side's)")


def test_a_relative_python_is_made_absolute(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--python .venv/bin/python passed the check, then failed to start in the script's work
    dir with a FileNotFoundError traceback."""
    import sys

    monkeypatch.chdir(Path(sys.executable).parent)
    args = bench.parse_args(["--script", str(tmp_path / "a.py"), "--python",
                             f"./{Path(sys.executable).name}"])
    assert Path(args.python).is_absolute() and Path(args.python).samefile(sys.executable)


# Found by review: only a `warmup` row was set aside, so for airbench96_faster (no warm-up run)
# run 0, compile included, was averaged in and flattered dlbox's ratio; --runs 3 did not help.
def _runs(*times: float) -> list[dict[str, Any]]:
    return [{"run": i, "tta_val_acc": 0.96, "val_acc": 0.95, "time_seconds": t}
            for i, t in enumerate(times)]


def test_without_a_warmup_run_run_0_is_left_out_of_the_summary() -> None:
    parsed = bench.parse_output(FASTER_SAMPLE.splitlines())  # 1 run: kept, and said (review)
    kept, note = bench.summary_runs(parsed)
    assert kept == parsed["runs"] and note is not None and "has the compile in its time" in note
    parsed["runs"] = _runs(45.0, 27.0, 28.0)
    kept, note = bench.summary_runs(parsed)
    assert [r["run"] for r in kept] == [1, 2]
    assert note == ("no warm-up run in the table: run 0 (its time includes the compile) is "
                    "left out of the summary and the ratio")
    muon = bench.parse_output(MUON_SAMPLE.splitlines())  # a warm-up run: every run counts
    assert bench.summary_runs(muon) == (muon["runs"], None)


@pytest.mark.slow
def test_a_script_without_warmup_has_run_0_out_of_its_mean_and_ratio(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "airbench96_like.py"
    header = FASTER_SAMPLE.splitlines()[:3]
    run0 = FASTER_SAMPLE.splitlines()[6:9]
    script.write_text(
        f"HEAD = {header!r}\nRUN0 = {run0!r}\n"
        "print('\\n'.join(HEAD), flush=True)\n"
        "def main(run):\n"
        "    seconds = 45.0 if run == 0 else 27.0 + run\n"  # run 0: the compile's time too
        "    rows = [line.replace('27.4410', '%.4f' % seconds) for line in RUN0]\n"
        "    rows[0] = rows[0].replace('|       0  |', '|  %6d  |' % run)\n"
        "    print('\\n'.join(rows), flush=True)\n"
        "accs = [main(run) for run in range(10)]\n")
    out = tmp_path / "airbench96.json"
    dlbox_json = _written(tmp_path, dlbox_doc(20.0, 0.94))
    status = bench.main(["--script", str(script), "--runs", "3", "--data", str(data_dir),
                         "--num-train", "20", "--num-test", "10", "--quiet",
                         "--dlbox-json", str(dlbox_json), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert status == 0 and doc["warmup"] is None
    assert [(r["run"], r["time_seconds"]) for r in doc["runs"]] == [(0, 45.0), (1, 28.0),
                                                                     (2, 29.0)]
    assert doc["summary"]["time_seconds"]["mean"] == 28.5
    assert doc["summary"]["time_seconds"]["n"] == 2
    assert doc["comparison"]["time_seconds_ratio"] == pytest.approx(20.0 / 28.5)
    assert doc["comparison"]["airbench"]["runs"] == 2
    note = ("no warm-up run in the table: run 0 (its time includes the compile) is left out "
            "of the summary and the ratio")
    # run 0 left out: the ratio is fair, the note information (review 15)
    assert doc["summary_note"] == note and note in doc["comparison"]["info_notes"]
    assert note not in doc["comparison"]["notes"]
    printed = capsys.readouterr().out
    assert f"note: {note}" in printed and "over 2 run(s):" in printed


def test_compare_notes_an_airbench_stopped_or_short_of_its_runs() -> None:
    summary = bench.summarize_runs(_runs(2.0, 2.1, 2.2))
    doc = dlbox_doc(1.5, 0.96)  # airbench's accuracy: no note on that
    assert bench.compare(summary, doc, stopped_by=None, runs_requested=3,
                         runs_finished=3)["notes"] == []
    assert bench.compare(summary, doc, stopped_by=None, runs_requested=10,
                         runs_finished=3)["notes"] == [
        "airbench finished 3 of 10 runs asked; the ratio rests on those"]
    assert bench.compare(summary, doc, stopped_by="SIGTERM", runs_requested=10,
                         runs_finished=3)["notes"] == [
        "airbench was stopped (SIGTERM): 3 of 10 runs asked finished; the ratio rests on those"]
