"""benchmarks/gpu_summary.py, the GPU session's summary, on tiny step results written here.

Each test writes the files a session's steps leave (OUT: the benchmarks' JSON, gpumem.csv;
WORK: steps.jsonl, the e2e records, the run dirs' metrics.json) and reads the summary back.
No GPU, no network: the figures are made up, the rules are the module's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import load_benchmark

summary_module = load_benchmark("gpu_summary")

T0 = 1_700_000_000.0
# (step, start, end) as run_step logs them, 10 s apart; "compiled" did not run (GPU mode only)
STEP_TIMES = [("env", 0, 5), ("data", 5, 10), ("gpu", 10, 15), ("speedrun", 15, 40),
              ("e2e1", 40, 55), ("e2e2", 55, 70), ("resnet", 70, 160), ("airbench", 160, 400),
              ("long", 400, 450)]


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _steps_jsonl(work: Path, steps: list[dict[str, Any]]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))


@pytest.fixture
def session(tmp_path: Path) -> tuple[Path, Path]:
    """(OUT, WORK) of a GPU session whose every figure meets its target."""
    out, work = tmp_path / "out", tmp_path / "work"
    _steps_jsonl(work, [{"step": name, "rc": 0, "start": T0 + a, "end": T0 + b,
                         "seconds": float(b - a), "limit": 100} for name, a, b in STEP_TIMES])
    _write(out / "speedrun.json", {
        "device": "cuda",
        "summary": {"tta_accuracy": {"mean": 0.912}, "time_seconds": {"mean": 1.6}},
        "runs": [{"peak_memory_mib": 1000.0 + i} for i in range(10)],
        "environment": {"torch": "2.11.0+cu130"}})
    _write(out / "speedrun_long.json", {"summary": {"tta_accuracy": {"mean": 0.9320}}})
    # step j: airbench96_faster next to speedrun-long, 3 runs (run 0 left out: information)
    _write(out / "airbench96.json", {"stopped_by": None, "comparison": {
        "time_seconds_ratio": 0.9, "airbench": {"runs": 2}, "notes": [],
        "info_notes": ["no warm-up run in the table: run 0 (its time includes the compile) "
                       "is left out of the summary and the ratio"]}})
    _write(out / "airbench.json", {
        "summary": {"time_seconds": {"mean": 2.0}}, "wall_seconds": 120.5,
        "runs": [{"run": i} for i in range(10)], "stopped_by": None,
        "warmup": {"finished_at_s": 60.0},
        "comparison": {"time_seconds_ratio": 0.8, "airbench": {"runs": 10}, "notes": []}})
    for name, seconds in (("e2e1", 14.0), ("e2e2", 11.5)):
        _write(work / f"{name}.e2e.json", {"accuracy_line_s": seconds, "rc": 0, "wall_s": 16.0})
    for name in ("e2e1", "e2e2"):
        _write(work / name / "metrics.json", {
            "final": {"test_accuracy": 0.91, "test_accuracy_tta": 0.915, "epochs_completed": 8,
                      "train_seconds": 3.0},
            "history": [{"test_accuracy": 0.90}, {"test_accuracy": 0.91}]})
    _write(work / "resnet" / "metrics.json", {
        "final": {"test_accuracy": 0.89, "epochs_completed": 16, "train_seconds": 95.0},
        "history": [{"test_accuracy": 0.86}, {"test_accuracy": 0.885}]})
    # nvidia-smi samples: one inside speedrun (3000 MiB), one inside airbench (not dlbox's:
    # 9000 MiB must not count), an unreadable row
    (out / "gpumem.csv").write_text(
        "epoch_s,memory_used_mib,utilization_pct\n"
        f"{T0 + 20},3000,90\n{T0 + 200},9000,99\nnot-a-time,1,1\n{T0 + 100},2500,80\n")
    return out, work


# the targets in their order in summary.json, by short names
KEYS = ("long_tta", "long_ratio", "resnet", "speedrun_tta", "speedrun_runs", "speedrun_time",
        "ratio", "e2e1", "e2e2", "torch_peak", "smi_peak")


def _targets(out: Path, work: Path) -> dict[str, dict[str, Any]]:
    rows = summary_module.targets(summary_module.load_results(out, work))
    return dict(zip(KEYS, rows, strict=True))


def test_every_target_met_passes(session: tuple[Path, Path]) -> None:
    out_work = session
    rows = _targets(*out_work)
    assert {name: row["pass"] for name, row in rows.items()} == dict.fromkeys(KEYS, True)
    assert rows["speedrun_runs"]["value"] == 10
    assert rows["resnet"] == {"target": "resnet accuracy (dlbox train --model resnet, GPU "
                              "defaults)", "goal": ">= 0.88", "value": 0.89, "pass": True}
    # MiB -> GB (1e9 B), unrounded: torch's largest run peak; nvidia-smi's in dlbox's steps
    # only (airbench's 9000 MiB sample is left out)
    assert rows["torch_peak"]["value"] == 1009 * 2**20 / 1e9
    assert rows["smi_peak"]["value"] == 3000 * 2**20 / 1e9
    # nor resnet's (step f): the 8 GB target is the speedrun's
    with (out_work[0] / "gpumem.csv").open("a") as samples:
        samples.write(f"{T0 + 101},9500,80\n")
    rows = _targets(*out_work)
    assert rows["smi_peak"]["value"] == 3000 * 2**20 / 1e9


def test_missed_targets_fail(session: tuple[Path, Path]) -> None:
    out, work = session
    _write(out / "speedrun.json", {
        "device": "cuda",
        "summary": {"tta_accuracy": {"mean": 0.9079}, "time_seconds": {"mean": 1.81}},
        "runs": [{"peak_memory_mib": 9000.0}] * 9})
    _write(work / "resnet" / "metrics.json", {"final": {"test_accuracy": 0.879}})
    _write(work / "e2e1.e2e.json", {"accuracy_line_s": 17.01, "rc": 0, "wall_s": 20.0})
    rows = _targets(out, work)
    failed = {name for name, row in rows.items() if row["pass"] is False}
    # the ratio (0.8) of a speedrun short of its runs and accuracy is no pass either
    assert failed == {"resnet", "speedrun_tta", "speedrun_runs", "speedrun_time", "e2e1",
                      "torch_peak", "ratio"}
    assert rows["speedrun_runs"]["value"] == 9
    assert rows["speedrun_time"]["value"] == 1.81
    assert rows["ratio"]["value"] == 0.8


def test_a_figure_on_its_goal_passes(session: tuple[Path, Path]) -> None:
    out, work = session
    _write(out / "speedrun.json", {
        "summary": {"tta_accuracy": {"mean": 0.908}, "time_seconds": {"mean": 1.8}},
        "runs": [{"peak_memory_mib": None}] * 10})
    _write(out / "airbench.json", {"stopped_by": None, "comparison": {
        "time_seconds_ratio": 1.0, "airbench": {"runs": 10}, "notes": []}})
    _write(work / "e2e1.e2e.json", {"accuracy_line_s": 17})
    rows = _targets(out, work)
    for name in ("speedrun_tta", "speedrun_time", "ratio", "e2e1"):
        assert rows[name]["pass"] is True, name
    assert (rows["torch_peak"]["value"], rows["torch_peak"]["pass"]) == (None, None)  # no peaks


def test_missing_or_failed_steps_are_missing_not_fail(session: tuple[Path, Path]) -> None:
    out, work = session
    (out / "speedrun.json").unlink()  # step d failed before writing
    (out / "airbench.json").write_text('{"summary": ')  # cut off mid-write
    (out / "airbench96.json").unlink()  # step j did not run (only when ONLY names it)
    (work / "resnet" / "metrics.json").unlink()
    # e2e1's record has no accuracy line's time (its step's line, below, is not there: no
    # rc 124 that would make it a FAIL); e2e2 left no record
    _write(work / "e2e1.e2e.json", {"accuracy_line_s": None, "rc": 124, "wall_s": 60.0})
    (work / "e2e2.e2e.json").unlink()
    # a failing step's figures still count: speedrun-long's JSON is there, and speedrun
    # (rc 1) ran while nvidia-smi sampled 3000 MiB
    _steps_jsonl(work, [{"step": "speedrun", "rc": 1, "start": T0 + 15, "end": T0 + 40,
                         "seconds": 25.0, "limit": 150},
                        {"step": "long", "rc": None, "skipped": True}])
    rows = _targets(out, work)
    missing = {name for name, row in rows.items() if row["pass"] is None}
    assert missing == set(KEYS) - {"long_tta", "smi_peak"}  # 0 speedrun runs: missing too
    assert all(rows[name]["value"] is None for name in missing)
    assert rows["long_tta"]["pass"] is True and rows["smi_peak"]["pass"] is True

    document = summary_module.build_summary(summary_module.load_results(out, work), "gpu", 540)
    assert document["train_runs"]["resnet"] == dict.fromkeys(
        ("test_accuracy", "test_accuracy_tta", "last_epoch_test_accuracy", "epochs",
         "train_seconds"))
    assert document["e2e"] == {"e2e1": {"accuracy_line_s": None, "rc": 124, "wall_s": 60.0},
                               "e2e2": None}
    assert document["speedrun"] is None and document["environment"] is None
    assert document["airbench"] == {"summary": None, "wall_seconds": None, "runs": 0,
                                    "stopped_by": None, "warmup_done_at_s": None,
                                    "comparison": None, "compiled_ratio": None}
    # a skipped step has no times, hence no GPU peak
    assert [s["gpu_memory_used_peak_mib"] for s in document["steps"]] == [3000.0, None]
    lines = summary_module.report_lines(document)
    assert sum(line.endswith("  missing") for line in lines) == 9
    assert lines[-1] == "  step long      rc None  - s  gpu peak - MiB"
    assert not any(line.endswith("  FAIL") for line in lines)
    # the table's columns line up: every goal column ends where the header's does (names
    # longer than the old fixed width pushed theirs right)
    table = lines[:1 + len(document["targets"])]
    assert len({line.rindex("  ") for line in table}) == 1, "\n".join(table)
    # No step ran at all (ONLY named none): still a summary, every target missing.
    (work / "steps.jsonl").unlink()
    document = summary_module.build_summary(summary_module.load_results(out, work), "gpu", 540)
    assert document["steps"] == []


def test_gpu_peaks_per_step_from_the_samples(session: tuple[Path, Path]) -> None:
    out, work = session
    steps = summary_module.load_results(out, work).steps
    peaks = {s["step"]: s["gpu_memory_used_peak_mib"] for s in steps}
    assert peaks == {**dict.fromkeys(peaks), "speedrun": 3000.0, "resnet": 2500.0,
                     "airbench": 9000.0}
    (out / "gpumem.csv").unlink()  # the CPU: no nvidia-smi, no samples
    assert {s["gpu_memory_used_peak_mib"] for s in summary_module.load_results(out, work).steps} \
        == {None}


def test_compiled_ratio_needs_both_times(session: tuple[Path, Path]) -> None:
    out, work = session
    assert summary_module.build_summary(
        summary_module.load_results(out, work), "gpu", 540)["airbench"]["compiled_ratio"] is None
    _write(out / "speedrun_compiled.json", {"summary": {"time_seconds": {"mean": 1.5}}})
    document = summary_module.build_summary(summary_module.load_results(out, work), "gpu", 540)
    assert document["airbench"]["compiled_ratio"] == 0.75
    assert document["speedrun_compiled"] == {"time_seconds": {"mean": 1.5}}
    assert "(with --compile: ratio 0.750)" in summary_module.report_lines(document)


def test_main_writes_summary_json(session: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out, work = session
    assert summary_module.main(["--out", str(out), "--work", str(work), "--mode", "gpu",
                                "--budget-s", "540"]) == 0
    text = (out / "summary.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "mode": "gpu",')  # indent 2
    document = json.loads(text)
    assert list(document) == ["mode", "budget_s", "targets", "steps", "e2e", "train_runs",
                              "speedrun", "speedrun_partial", "speedrun_long_partial",
                              "speedrun_compiled", "speedrun_long", "airbench", "airbench96",
                              "environment"]
    assert document["speedrun_partial"] is None  # the speedrun finished its runs
    assert document["mode"] == "gpu" and document["budget_s"] == 540.0
    assert all(list(t) == ["target", "goal", "value", "pass"] for t in document["targets"])
    assert [s["step"] for s in document["steps"]] == [name for name, _, _ in STEP_TIMES]
    assert all(list(s)[-1] == "gpu_memory_used_peak_mib" for s in document["steps"])
    assert list(document["train_runs"]) == ["e2e1", "e2e2", "resnet"]
    assert document["train_runs"]["resnet"] == {
        "test_accuracy": 0.89, "test_accuracy_tta": None, "last_epoch_test_accuracy": 0.885,
        "epochs": 16, "train_seconds": 95.0}
    assert document["airbench"] == {
        "summary": {"time_seconds": {"mean": 2.0}}, "wall_seconds": 120.5, "runs": 10,
        "stopped_by": None, "warmup_done_at_s": 60.0,
        "comparison": {"time_seconds_ratio": 0.8, "airbench": {"runs": 10}, "notes": []},
        "compiled_ratio": None}
    assert document["environment"] == {"torch": "2.11.0+cu130"}

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["target", "goal", "value", "result"]
    assert printed[4].startswith("speedrun mean TTA accuracy ")
    assert printed[4].split()[-4:] == [">=", "0.908", "0.912", "PASS"]
    assert sum(line.endswith("  PASS") for line in printed) == 11
    assert printed[-1] == f"wrote {out / 'summary.json'}"


@pytest.mark.parametrize("change, message", [
    ({"--out": "missing"}, "--out {tmp}/missing is not a folder"),
    ({"--work": "missing"}, "--work {tmp}/missing is not a folder"),
    ({"--budget-s": "-5"}, "--budget-s must be a number of seconds more than 0, got -5"),
    ({"--budget-s": "inf"}, "--budget-s must be a number of seconds more than 0, got inf"),
])
def test_bad_arguments_write_no_summary(session: tuple[Path, Path], tmp_path: Path,
                                        change: dict[str, str], message: str) -> None:
    """Found in review: `--out /nonexistent` made that folder and wrote a summary of every
    target "missing", with exit 0; --mode banana and --budget-s -5 were taken as they were."""
    out, work = session
    args = {"--out": str(out), "--work": str(work), "--mode": "gpu", "--budget-s": "540"}
    args.update({flag: str(tmp_path / value) if flag in ("--out", "--work") else value
                 for flag, value in change.items()})
    with pytest.raises(summary_module.UsageError) as info:
        summary_module.main([item for pair in args.items() for item in pair])
    assert info.value.message == message.format(tmp=tmp_path) and info.value.hint
    assert not (tmp_path / "missing").exists() and not (out / "summary.json").exists()
    with pytest.raises(SystemExit):  # argparse's own refusal: not one of gpu, smoke
        summary_module.main([*(item for pair in args.items() for item in pair),
                             "--mode", "banana"])


def test_failed_speedrun_runs_do_not_count(session: tuple[Path, Path]) -> None:
    # time_to_accuracy.py keeps a failed run (NaN loss) in "runs", out of the summary: ten
    # runs of which two failed are eight runs behind the mean, short of the target
    out, work = session
    runs = [{"peak_memory_mib": 1000.0, "failed": None} for _ in range(8)]
    runs += [{"peak_memory_mib": 1000.0, "failed": "train loss nan in epoch 3"}] * 2
    _write(out / "speedrun.json", {
        "summary": {"tta_accuracy": {"mean": 0.912}, "time_seconds": {"mean": 1.6}},
        "runs": runs, "failed_runs": 2})
    rows = _targets(out, work)
    assert rows["speedrun_runs"]["value"] == 8 and rows["speedrun_runs"]["pass"] is False
    # every run failed: 0 runs is a FAIL, not "missing" (the file is there)
    _write(out / "speedrun.json", {"summary": {}, "runs": runs[8:], "failed_runs": 2})
    rows = _targets(out, work)
    assert rows["speedrun_runs"]["value"] == 0 and rows["speedrun_runs"]["pass"] is False


def test_a_line_cut_short_in_the_step_log_loses_that_step_only(tmp_path: Path) -> None:
    """Found by review: one truncated line in steps.jsonl (a session killed mid-write) raised
    JSONDecodeError, and the whole summary was lost."""
    log = tmp_path / "steps.jsonl"
    log.write_text('{"step": "env", "rc": 0}\n{"step": "data", "rc": 0}\n{"step": "speedr\n')
    assert summary_module.read_steps(log) == [{"step": "env", "rc": 0},
                                              {"step": "data", "rc": 0}]


def test_a_byte_that_is_not_utf8_in_the_samples_loses_that_row_only(tmp_path: Path) -> None:
    """Found by review: one byte that is not UTF-8 in gpumem.csv (a sampler killed mid-write)
    raised UnicodeDecodeError, and the whole summary was lost."""
    samples = tmp_path / "gpumem.csv"
    samples.write_bytes(b"epoch_s,memory_used_mib\n1.5,1200\n\xff\xfe x\n2.5,1300\n")
    assert summary_module.read_gpu_samples(samples) == [(1.5, 1200.0), (2.5, 1300.0)]


def test_a_smoke_sessions_cpu_memory_is_no_gpu_peak(session: tuple[Path, Path]) -> None:
    """A --smoke session trains on the CPU, where a run's peak_memory_mib is the process's
    RSS: the "GPU peak" row showed it, and passed or failed the 8 GB target on it."""
    out, work = session
    _write(out / "speedrun.json", {
        "device": "cpu", "summary": {"tta_accuracy": {"mean": 0.3}},
        "runs": [{"peak_memory_mib": 9000.0, "failed": None}]})
    rows = _targets(out, work)
    assert (rows["torch_peak"]["value"], rows["torch_peak"]["pass"]) == (None, None)


def test_files_of_another_shape_are_missing_figures_not_a_lost_summary(
        session: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: valid JSON of another shape (a step without "step", a string start,
    a history of numbers, a run that is no object, a figure that is a string) raised, and
    the summary the session's figures are read from was lost."""
    out, work = session
    _steps_jsonl(work, [{"rc": 0}, {"step": "speedrun", "rc": 0, "start": "soon", "end": 3},
                        {"step": "env", "rc": 0, "start": T0, "end": T0 + 5}])
    _write(work / "resnet" / "metrics.json", {"history": [1], "final": {"test_accuracy": "x"}})
    _write(out / "speedrun.json", {"device": "cuda", "runs": [5, {"peak_memory_mib": "a"}],
                                   "summary": {"tta_accuracy": {"mean": [0.9]}}})
    _write(out / "airbench.json", {"runs": 3, "summary": {"time_seconds": {"mean": "2"}}})
    assert summary_module.main(["--out", str(out), "--work", str(work), "--mode", "gpu",
                                "--budget-s", "540"]) == 0
    document = json.loads((out / "summary.json").read_text())
    assert [s["step"] for s in document["steps"]] == ["speedrun", "env"]
    assert document["steps"][0]["start"] is None
    rows = dict(zip(KEYS, document["targets"], strict=True))
    for key in ("resnet", "speedrun_tta", "torch_peak"):
        assert rows[key]["value"] is None and rows[key]["pass"] is None, rows[key]
    assert rows["speedrun_runs"]["value"] == 1  # the one run that is an object
    assert document["airbench"]["runs"] == 0


@pytest.mark.parametrize("record", [None, {"accuracy_line_s": None, "stopped": True}])
def test_an_e2e_step_that_timed_out_before_its_accuracy_line_fails(
        session: tuple[Path, Path], record: dict[str, Any] | None) -> None:
    """Found by review: an e2e step stopped by its limit (rc 124) before it printed its
    accuracy line was "missing", as if it had not run, where the 17 s target was missed."""
    out, work = session
    if record is None:  # the stamper's record lost
        (work / "e2e1.e2e.json").unlink()
    else:  # the stamper's record of a SIGTERM before any accuracy line
        _write(work / "e2e1.e2e.json", record)
    steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]
    for step in steps:
        if step["step"] == "e2e1":
            step.update(rc=124, limit=39)
    _steps_jsonl(work, steps)
    rows = _targets(out, work)
    assert rows["e2e1"]["value"] is None and rows["e2e1"]["pass"] is False
    assert rows["e2e1"]["note"] == "no accuracy line within 39 s"
    assert "note" not in rows["e2e2"]
    lines = summary_module.report_lines(
        summary_module.build_summary(summary_module.load_results(out, work), "gpu", 540))
    assert lines[8].endswith("  FAIL (no accuracy line within 39 s)"), lines[8]
    # stopped by the session's Ctrl-C or SIGTERM (rc 143), not its limit: no figure, missing
    for step in steps:
        if step["step"] == "e2e1":
            step.update(rc=143)
    _steps_jsonl(work, steps)
    rows = _targets(out, work)
    assert rows["e2e1"]["pass"] is None and "note" not in rows["e2e1"]


@pytest.mark.parametrize("damage, reason", [
    ("airbench 9 runs", "airbench has 9 run(s) in its mean, fewer than 10"),
    ("airbench stopped", "airbench was stopped (timeout)"),
    ("no airbench runs recorded", "airbench has no run count in its mean, fewer than 10"),
    ("a comparison note", "note: the data dirs' checksums differ: not the same data"),
    ("speedrun 9 runs", "the speedrun runs (not failed) row does not pass"),
    ("speedrun accuracy short", "the speedrun mean TTA accuracy row does not pass"),
])
def test_the_ratio_passes_only_on_a_full_comparison(session: tuple[Path, Path], damage: str,
                                                    reason: str) -> None:
    """Found by review: the ratio row passed on the ratio alone, when airbench was stopped
    after 3 runs, or the speedrun behind it missed its runs or accuracy: a PASS of nothing."""
    out, work = session
    airbench = json.loads((out / "airbench.json").read_text())
    speedrun = json.loads((out / "speedrun.json").read_text())
    if damage == "airbench 9 runs":
        airbench["comparison"]["airbench"]["runs"] = 9
    elif damage == "airbench stopped":
        airbench["stopped_by"] = "timeout"
    elif damage == "no airbench runs recorded":
        del airbench["comparison"]["airbench"]
    elif damage == "a comparison note":
        airbench["comparison"]["notes"] = ["the data dirs' checksums differ: not the same data"]
    elif damage == "speedrun 9 runs":
        speedrun["runs"] = speedrun["runs"][:9]
    else:
        speedrun["summary"]["tta_accuracy"]["mean"] = 0.9
    _write(out / "airbench.json", airbench)
    _write(out / "speedrun.json", speedrun)
    rows = _targets(out, work)
    assert rows["ratio"]["value"] == 0.8 and rows["ratio"]["pass"] is False
    assert reason in rows["ratio"]["note"]
    lines = summary_module.report_lines(
        summary_module.build_summary(summary_module.load_results(out, work), "gpu", 540))
    assert any(line.startswith("ratio speedrun / airbench94_muon") and "  FAIL (" in line
               and reason in line for line in lines), lines


@pytest.mark.parametrize("peak_bytes, passed", [(8_000_215_450, False), (8_000_000_000, True)])
def test_the_gpu_peak_is_compared_in_bytes_not_rounded(session: tuple[Path, Path],
                                                       peak_bytes: int, passed: bool) -> None:
    """Found by review: 8,000,215,450 B, rounded to 8.000 GB first, passed "<= 8 GB"."""
    out, work = session
    speedrun = json.loads((out / "speedrun.json").read_text())
    speedrun["runs"][3]["peak_memory_mib"] = peak_bytes / 2**20
    _write(out / "speedrun.json", speedrun)
    (out / "gpumem.csv").write_text(f"epoch_s,memory_used_mib\n{T0 + 20},{peak_bytes / 2**20}\n")
    rows = _targets(out, work)
    for key in ("torch_peak", "smi_peak"):
        assert rows[key]["value"] == pytest.approx(peak_bytes / 1e9, abs=1e-9), key
        assert rows[key]["pass"] is passed, key
    if not passed:
        assert "8,000,215,450 B" in rows["torch_peak"]["note"]


def test_an_out_it_cannot_write_to_has_a_hint_of_its_own_flags(
        session: tuple[Path, Path]) -> None:
    """Found by review: `--out /proc` hinted at --run-dir and --data, which it has not."""
    _, work = session
    with pytest.raises(summary_module.DlboxError) as info:
        summary_module.main(["--out", "/proc", "--work", str(work), "--mode", "gpu",
                             "--budget-s", "540"])
    assert "--out" in (info.value.hint or "") and "--run-dir" not in (info.value.hint or "")
