"""benchmarks/time_to_accuracy.py as a subprocess on the CPU, at a tiny size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlbox.fileio import read_json

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "time_to_accuracy.py"


@pytest.mark.slow
def test_benchmark_writes_runs_summary_environment_and_baseline(tmp_path: Path) -> None:
    from dlbox.data.synthetic import write_fake_cifar10

    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=300, n_test=100, seed=0)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(data), "--model", "speedrun",
         "--runs", "2", "--epochs", "1", "--num-train", "200", "--num-test", "100",
         "--device", "cpu", "--threads", "2", "--baseline", "tutorial",
         "--baseline-epochs", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run 2/2" in proc.stdout and "training time speedrun / tutorial" in proc.stdout
    doc = read_json(out)
    assert doc["model"] == "speedrun" and doc["device"] == "cpu"
    assert doc["settings"]["runs"] == 2 and doc["settings"]["num_train"] == 200
    env = doc["environment"]
    for key in ("torch", "python", "device_name", "cpu_cores", "platform"):
        assert env.get(key) is not None, key
    assert len(doc["runs"]) == 2
    for run in doc["runs"]:
        assert 0.0 <= run["accuracy"] <= 1.0 and 0.0 <= run["tta_accuracy"] <= 1.0
        assert run["train_seconds"] > 0 and run["time_seconds"] >= run["train_seconds"]
        assert run["images_per_second"] > 0 and run["peak_memory_mib"] > 10
        assert run["timer"] == "perf_counter" and run["precision"] == "float32"  # CPU auto
    for key in ("accuracy", "tta_accuracy", "train_seconds", "images_per_second",
                "peak_memory_mib"):
        s = doc["summary"][key]
        assert s["min"] <= s["mean"] <= s["max"] and s["std"] >= 0, key
    base = doc["baseline"]
    assert (base["model"], base["epochs"], base["batch_size"]) == ("tutorial", 1, 4)
    assert (base["lr"], base["momentum"]) == (0.001, 0.9)
    assert base["num_train"] is None  # the tutorial trains on every image, not --num-train
    assert 0.0 <= base["accuracy"] <= 1.0 and base["train_seconds"] > 0
    ratio = doc["summary"]["train_seconds"]["mean"] / base["train_seconds"]
    assert base["train_seconds_ratio"] == pytest.approx(ratio)


@pytest.mark.slow
def test_benchmark_precision_and_compile_mode_options(tmp_path: Path) -> None:
    from dlbox.data.synthetic import write_fake_cifar10

    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=200, n_test=50, seed=0)
    out = tmp_path / "bench.json"
    command = [sys.executable, str(SCRIPT), "--data", str(data), "--runs", "1", "--epochs",
               "1", "--device", "cpu", "--threads", "2", "--json", str(out)]
    proc = subprocess.run(command + ["--precision", "bf16"], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = read_json(out)
    assert doc["settings"]["precision"] == "bf16" and doc["runs"][0]["precision"] == "bfloat16"
    # a mode without --compile would be silently unused: refused before any work
    out.unlink()
    proc = subprocess.run(command + ["--compile-mode", "max-autotune"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--compile-mode needs --compile" in proc.stderr
    assert not out.exists()
