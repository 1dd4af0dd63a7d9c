"""Review 13 of the benchmarks: image_build's cleanup and an engine that answers slowly,
airbench_side_by_side's single run, clashing outputs and leftovers, the write hints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import load_benchmark

# ---- the engine: removing the image a build replaced is cleanup ------------------------------


class _SlowApi:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def inspect_image(self, image_id: str) -> dict[str, Any]:
        return {"Id": image_id, "RepoTags": [], "Config": {"Labels": {"dlbox.stage": "deps"}}}

    def remove_image(self, image_id: str) -> None:
        raise self.error


class _SlowClient:
    def __init__(self, error: BaseException) -> None:
        self.api = _SlowApi(error)


@pytest.mark.parametrize("kind", ["timeout", "connection"])
def test_a_replaced_image_the_engine_is_slow_to_remove_is_a_warning_not_a_crash(
        kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: on a loaded machine removing the 1.6 GB image a cold build replaced
    took longer than the SDK's 60 s, and the requests ReadTimeout (not a docker error) ended
    the benchmark in a traceback, the build done and the image left."""
    import requests

    from dlbox.container import engine

    error = (requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")
             if kind == "timeout" else requests.exceptions.ConnectionError("reset by peer"))
    image = "sha256:" + "ab12" * 16
    outcome = engine.remove_replaced_image(_SlowClient(error), image, "dlbox.stage")
    assert outcome == "not removed"
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("warning: "), err
    assert "docker rmi ab12ab12ab12" in err
    if kind == "timeout":
        assert "within 60 s" in err


# ---- image_build.py: what an unexpected failure leaves ---------------------------------------


class _Image:
    def __init__(self, image_id: str, labels: dict[str, str]) -> None:
        self.id, self.labels = image_id, labels


def _bench_with_images(monkeypatch: pytest.MonkeyPatch, dangling: list[_Image],
                       measure: Any) -> tuple[Any, list[str]]:
    bench = load_benchmark("image_build")
    removed: list[str] = []

    class Images:
        def remove(self, name: str, force: bool = False) -> None:
            removed.append(name)

        def list(self, filters: dict[str, Any] | None = None) -> list[_Image]:
            assert filters and filters.get("dangling") is True
            return [image for image in dangling if image.id not in removed]

    class Client:
        images = Images()

    monkeypatch.setattr(bench.engine, "connect", lambda: Client())
    monkeypatch.setattr(bench, "measure", measure)
    return bench, removed


def _fake_build(ids: list[str], fail: BaseException | None = None) -> Any:
    """An engine.build stand-in whose output names the step images `ids`."""
    def build(client: object, context: object, *, log: list[str] | None = None,
              **kwargs: object) -> object:
        assert log is not None
        for image_id in ids:
            log.append(f" ---> {image_id[7:19]}")
        if fail is not None:
            raise fail
        return object()
    return build


def test_an_unexpected_error_is_a_line_and_its_untagged_images_go(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: a requests ReadTimeout ended the benchmark in a traceback, and the
    1.63 GB untagged deps stage its cold build made stayed; the cleanup removed its images by
    tag only. Untagged images its builds did not make stay."""
    import requests

    ours = "sha256:" + "1" * 64
    theirs = "sha256:" + "2" * 64
    ours_unlabelled = "sha256:" + "3" * 64
    dangling = [_Image(ours, {"dlbox.stage": "deps"}), _Image(theirs, {"dlbox.stage": "deps"}),
                _Image(ours_unlabelled, {})]

    def measure(client: object, args: object) -> dict[str, object]:
        bench.engine.build(client, Path("ctx.tar"), log=[])
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")

    bench, removed = _bench_with_images(monkeypatch, dangling, measure)
    monkeypatch.setattr(bench.engine, "build", _fake_build([ours, ours_unlabelled]))
    assert bench.main([]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("error: ") and "ReadTimeout" in lines[0], captured.err
    assert "Traceback" not in captured.err and len(lines) == 2
    assert lines[1].startswith("hint: ")
    assert removed == [bench.TAG, f"{bench.TAG}-deps", ours]


def test_a_failed_build_s_untagged_stage_goes_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The ids come from the build's output, kept when the build fails."""
    from dlbox.errors import ContainerError

    ours = "sha256:" + "4" * 64
    dangling = [_Image(ours, {"dlbox.stage": "deps"})]

    def measure(client: object, args: object) -> dict[str, object]:
        bench.engine.build(client, Path("ctx.tar"), log=[])
        raise AssertionError("not reached")

    bench, removed = _bench_with_images(monkeypatch, dangling, measure)
    monkeypatch.setattr(bench.engine, "build",
                        _fake_build([ours], ContainerError("image build failed", hint="x")))
    assert bench.main([]) == 1
    assert removed == [bench.TAG, f"{bench.TAG}-deps", ours]
    assert capsys.readouterr().err.startswith("error: image build failed")


# ---- airbench_side_by_side.py ----------------------------------------------------------------

airbench = load_benchmark("airbench_side_by_side")


def _one_run(warmup: bool) -> dict[str, Any]:
    run = {"run": 0, "tta_val_acc": 0.94, "val_acc": 0.93, "time_seconds": 45.0}
    return {"runs": [run], "warmup": dict(run, run="warmup") if warmup else None}


def test_a_single_run_without_a_warmup_says_its_time_includes_the_compile() -> None:
    """Found in review: --runs 1 on a table without a warm-up run (airbench96_faster.py)
    counted the compile in the whole mean and the ratio, silently."""
    kept, note = airbench.summary_runs(_one_run(warmup=False))
    assert [r["run"] for r in kept] == [0]
    assert note == ("no warm-up run in the table: the only run (run 0) has the compile in its "
                    "time, so the mean and the ratio overstate airbench's time (--runs 2 or "
                    "more leaves it out)")
    assert airbench.summary_runs(_one_run(warmup=True))[1] is None


def test_json_and_dlbox_json_at_one_path_are_refused_before_anything_runs(
        tmp_path: Path) -> None:
    """Found in review: the same file for both overwrote the dlbox measurement."""
    from dlbox.errors import UsageError

    script = airbench.write_fake_script(tmp_path / "ab.py")
    same = tmp_path / "speedrun.json"
    same.write_text("{}")
    with pytest.raises(UsageError) as caught:
        airbench.parse_args(["--script", str(script), "--dlbox-json", str(same),
                             "--json", str(tmp_path / "." / "speedrun.json")])
    assert "--json and --dlbox-json are the same file" in caught.value.message
    assert caught.value.hint and same.read_text() == "{}"


@pytest.mark.parametrize("case", ["missing-data", "no-run-loop"])
def test_bad_input_leaves_no_work_dir_behind(tmp_path: Path, case: str) -> None:
    """Found in review: a missing --data left WORK/fake_airbench.py, a script without a run
    loop the empty WORK the harness had made."""
    from dlbox.errors import DlboxError

    if case == "no-run-loop":
        script = tmp_path / "noloop.py"
        script.write_text("print('not airbench')\n")
        data = tmp_path / "no-such-data"  # never reached: the script is refused first
    else:
        script = airbench.write_fake_script(tmp_path / "fake_airbench.py")
        data = tmp_path / "no-such-data"
    work = tmp_path / "kw"
    with pytest.raises(DlboxError):
        airbench.main(["--script", str(script), "--runs", "1", "--data", str(data),
                       "--keep-work-dir", str(work), "--quiet"])
    assert not work.exists(), sorted(work.rglob("*"))


def test_a_fake_script_that_cannot_be_written_names_its_own_flag(tmp_path: Path) -> None:
    """Found in review: the hint named --run-dir / --data (dlbox's own flags)."""
    from dlbox.errors import FileWriteError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileWriteError) as caught:
        airbench.write_fake_script(tmp_path / "a-file" / "x.py")
    assert "--write-fake-script" in (caught.value.hint or "")
    assert "--run-dir" not in (caught.value.hint or "")


def test_a_json_that_cannot_be_written_after_the_runs_is_exit_1_naming_json(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: the write at the end failed with exit 2 (bad input given up front)
    and a hint naming --run-dir / --data."""
    from dlbox.errors import FileWriteError
    from dlbox.fileio import write_json_atomic

    def failing(path: Path, document: object) -> None:
        raise FileWriteError(path, "Not a directory")

    monkeypatch.setattr(airbench, "write_json_atomic", failing)
    with pytest.raises(FileWriteError) as caught:
        airbench.write_results(tmp_path / "out.json", {})
    assert caught.value.hint and "--json" in caught.value.hint
    assert "--run-dir" not in caught.value.hint
    monkeypatch.setattr(airbench, "write_json_atomic", write_json_atomic)


def test_compare_notes_accuracies_far_apart() -> None:
    """Found in review: dlbox 44.50 % against airbench 100.00 % gave a ratio of 12.167 with
    no word that the two did not reach the same accuracy."""
    stat = lambda mean: {"mean": mean, "n": 1}  # noqa: E731
    doc = {"benchmark": "time_to_accuracy", "summary": {"time_seconds": stat(12.167),
                                                        "tta_accuracy": stat(0.445)}}
    far = airbench.compare({"tta_val_acc": stat(1.0), "time_seconds": stat(1.0)}, doc)
    assert any("accuracies differ" in note and "44.50%" in note and "100.00%" in note
               for note in far["notes"]), far["notes"]
    near = airbench.compare({"tta_val_acc": stat(0.447), "time_seconds": stat(1.0)}, doc)
    assert not any("accuracies differ" in note for note in near["notes"])


# ---- cpu_layout.py ---------------------------------------------------------------------------


def test_cpu_layout_json_failing_after_the_measuring_is_exit_1_naming_json(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: a --json whose folder became a file meanwhile: exit 2 (bad input)
    after the whole measuring, and a hint naming --run-dir / --data."""
    cpu_layout = load_benchmark("cpu_layout")
    out = tmp_path / "sub" / "layout.json"
    out.parent.mkdir()

    def measure(seconds: float, repeats: int) -> dict[str, dict[str, float]]:
        out.parent.rmdir()
        out.parent.write_text("")  # the folder became a file meanwhile
        return {"train": {"contiguous": 1.0, "channels_last": 2.0}}

    monkeypatch.setattr(cpu_layout, "measure", measure)
    monkeypatch.setattr(sys, "argv", ["cpu_layout.py", "--seconds", "0.01", "--repeats", "1",
                                      "--json", str(out)])
    assert cpu_layout.cli() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: cannot write") and err[1].startswith("hint: ")
    assert "--json" in err[1] and "--run-dir" not in err[1]
