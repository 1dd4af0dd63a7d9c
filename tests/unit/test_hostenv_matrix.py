"""The shipped compatibility data: every row sourced and dated, ordered, internally consistent."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from dlbox.hostenv.compat import arch_fit, build_fit, driver_fit, split_arch_list
from dlbox.hostenv.matrix import load_matrix, nearest_release
from dlbox.hostenv.versions import (
    compute_capability_tuple,
    cuda_from_int,
    parse_version,
    version_at_least,
)

# the first check; rows added or fixed since
CHECKED = {"2026-11-22", "2026-12-04", "2026-12-06", "2026-12-07"}


@pytest.mark.parametrize("name", ["cuda.json", "torch.json", "tensorflow.json", "jax.json"])
def test_every_row_has_source_and_date(name: str) -> None:
    doc = json.loads(resources.files("dlbox.hostenv").joinpath("matrix", name).read_text())
    rows = doc["releases"]
    assert rows
    for row in rows:
        assert row["source"].strip(), row
        assert row["checked"] in CHECKED, row
        assert isinstance(row.get("uncertain", False), bool)


def test_releases_newest_first_and_cover_torch_2_0_up() -> None:
    matrix = load_matrix()
    for rows in (matrix.torch, matrix.tensorflow, matrix.jax):
        versions = [parse_version(r.versions[-1]) for r in rows]
        assert versions == sorted(versions, reverse=True)
    releases = {r.release for r in matrix.torch}
    assert {"2.0", "2.7", "2.9", "2.13", "2.14"} <= releases
    assert {r.release for r in matrix.tensorflow} >= {"1.0", "1.12", "1.15", "2.0", "2.15", "2.21"}


def test_torch_variants_are_consistent() -> None:
    matrix = load_matrix()
    for release in matrix.torch:
        cudas = [parse_version(v.cuda) for v in release.variants]
        assert cudas == sorted(cudas, reverse=True), release.release
        assert release.python and all(p.startswith("3.") for p in release.python)
        for variant in release.variants:
            assert variant.name == "cu" + variant.cuda.replace(".", "")  # type: ignore[union-attr]
            assert matrix.cuda_release(variant.cuda) is not None, variant
            # a build cannot carry SASS for an architecture its CUDA does not know
            known = {compute_capability_tuple(a) for a in matrix.cuda_archs(variant.cuda)}
            for arch in variant.archs:
                where = (release.release, variant.name, arch)
                assert compute_capability_tuple(arch) in known, where


def test_driver_minimums_grow_with_cuda() -> None:
    matrix = load_matrix()
    drivers = [parse_version(r.ga_driver) for r in matrix.cuda_releases]
    assert drivers == sorted(drivers)
    assert dict(matrix.minor_compat) == {"11": "450.80.02", "12": "525.60.13", "13": "580"}
    for row in matrix.cuda_releases:
        for _update, driver in row.update_drivers:
            assert version_at_least(driver, row.ga_driver)


def test_cuda_13_dropped_maxwell_to_volta() -> None:
    matrix = load_matrix()
    archs13 = matrix.cuda_archs("13.0")
    assert "7.5" in archs13 and not {"5.0", "6.0", "6.1", "7.0", "7.2"} & set(archs13)
    assert "12.0" in matrix.cuda_archs("12.8") and "12.0" not in matrix.cuda_archs("12.6")


def test_max_cuda_for_driver_matches_nvidia_smi() -> None:
    matrix = load_matrix()
    assert matrix.max_cuda_for_driver("535.104.05") == "12.2"
    assert matrix.max_cuda_for_driver("470.256.02") == "11.4"
    assert matrix.max_cuda_for_driver("580.95.05") == "13.0"
    assert matrix.max_cuda_for_driver("390.12") == "9.0"  # 9.1 needs 390.46
    assert matrix.max_cuda_for_driver("396.37") == "9.2"
    assert matrix.max_cuda_for_driver("340.108") is None


def test_nearest_release_for_unknown_versions() -> None:
    matrix = load_matrix()
    assert nearest_release(matrix.torch, "2.99.0").release == matrix.torch[0].release
    assert nearest_release(matrix.torch, "2.7.5").release == "2.7"
    assert nearest_release(matrix.torch, "1.13.1").release == "2.0"
    assert nearest_release(matrix.torch, "junk") is None


def test_version_helpers() -> None:
    assert parse_version("535.104.05") == (535, 104, 5)
    assert parse_version("2.9.1+cu128") == (2, 9, 1)
    assert parse_version("nope") is None
    assert version_at_least("580.65.06", "580") is True
    assert version_at_least("525.60.12", "525.60.13") is False
    assert version_at_least(None, "1") is None
    assert cuda_from_int(12020) == "12.2" and cuda_from_int(13000) == "13.0"
    assert compute_capability_tuple("sm_120") == (12, 0)
    assert compute_capability_tuple("compute_90a") == (9, 0)
    assert compute_capability_tuple("8.6") == (8, 6)
    assert compute_capability_tuple("banana") is None


def test_binary_and_ptx_compatibility() -> None:
    archs = ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0")
    assert arch_fit("8.9", archs) == "sass"  # sm_86 cubins run on sm_89 (same major)
    assert arch_fit("12.0", archs) == "none"
    assert arch_fit("12.0", archs, ("9.0",)) == "ptx"
    assert arch_fit("6.1", ("7.0", "7.5")) == "none"
    assert arch_fit(None, archs) == "unknown"
    matrix = load_matrix()
    # compute_90 PTX built with CUDA 12.4: the CUDA 12.4 libraries have nothing for sm_120
    assert build_fit(matrix, "12.0", archs, ("9.0",), "12.4") == "none"
    assert split_arch_list(("sm_75", "sm_120", "compute_120")) == (("7.5", "12.0"), ("12.0",))


def test_driver_fit_tiers() -> None:
    matrix = load_matrix()
    fit = driver_fit(matrix, "535.104.05", "12.8")
    assert (fit.ok, fit.ga_ok) == (True, False)
    assert (fit.min_driver, fit.ga_driver) == ("525.60.13", "570.26")
    assert driver_fit(matrix, "470.223.02", "12.4").ok is False
    assert driver_fit(matrix, "580.95.05", "13.0").ga_ok is True
    unknown = driver_fit(matrix, "600.10", "13.9")
    assert unknown.known_cuda is False and unknown.ok is True


def test_cuda_11_0_runs_on_its_own_ga_driver_below_the_11x_floor() -> None:
    # CUDA 11.0's GA driver (11.0.2: 450.51.05, 11.0.3: 450.51.06) is older than the 11.x
    # minor-version floor 450.80.02; a build made with 11.0 still runs on it.
    matrix = load_matrix()
    fit = driver_fit(matrix, "450.51.06", "11.0")
    assert (fit.ok, fit.ga_ok) == (True, True)
    assert (fit.min_driver, fit.ga_driver) == ("450.51.05", "450.51.05")
    assert driver_fit(matrix, "450.36.06", "11.0").ok is False  # the 11.0.1 RC's driver
    assert driver_fit(matrix, "450.51.06", "11.1").ok is False  # 11.1 needs the floor


def test_last_driver_branch_per_architecture() -> None:
    matrix = load_matrix()
    assert matrix.last_driver_branch("3.7") == (470, "Kepler")
    assert matrix.last_driver_branch("2.1") == (390, "Fermi")
    for cc in ("5.0", "6.1", "7.0", "7.2"):
        assert matrix.last_driver_branch(cc) == (580, "Maxwell, Pascal and Volta"), cc
    assert matrix.last_driver_branch("7.5") is None
    assert matrix.last_driver_branch("12.0") is None
    assert matrix.last_driver_branch(None) is None


def test_tensorflow_1x_tested_builds() -> None:
    # tensorflow.org "Tested build configurations", Linux GPU
    matrix = load_matrix()
    rows = {r.release: r for r in matrix.tensorflow}
    assert (rows["1.15"].cuda, rows["1.15"].cudnn) == ("10.0", "7.4")
    assert (rows["1.13"].cuda, rows["1.13"].cudnn) == ("10.0", "7.4")
    for release in ("1.5", "1.9", "1.12"):
        assert (rows[release].cuda, rows[release].cudnn) == ("9.0", "7"), release
    assert (rows["1.4"].cuda, rows["1.4"].cudnn) == ("8.0", "6")
    assert (rows["1.0"].cuda, rows["1.0"].cudnn) == ("8.0", "5.1")
    # the GPU wheels of 2.0 and older are tensorflow-gpu; tensorflow was CPU-only
    for release in ("1.12", "1.15", "2.0"):
        assert (rows[release].gpu_package, rows[release].cpu_package) == ("tensorflow-gpu",
                                                                          "tensorflow")
    assert (rows["2.1"].gpu_package, rows["2.1"].cpu_package) == ("tensorflow", "tensorflow-cpu")
    for row in matrix.tensorflow:
        assert matrix.cuda_release(row.cuda) is not None, row.release
    fit = driver_fit(matrix, "384.130", "9.0")
    assert (fit.ok, fit.min_driver) == (True, "384.81")  # before CUDA 11: the GA driver
    assert driver_fit(matrix, "375.26", "9.0").ok is False


def test_cudnn_minimum_compute_capability() -> None:
    matrix = load_matrix()
    assert matrix.cudnn_min_cc("9.1") == "5.0" and matrix.cudnn_min_cc("9.10") == "5.0"
    assert matrix.cudnn_min_cc("8.9") == "5.0"
    assert matrix.cudnn_min_cc("8.7") is None  # not recorded: not checked
    assert matrix.cudnn_min_cc(None) is None


def test_a_tesla_architecture_gpu_is_not_called_fermi() -> None:
    # review: sm_10 was told "R390 is the last driver branch for Fermi GPUs"; 1.x is the
    # Tesla architecture (GeForce 8 to 200 series), whose last branch is R340
    matrix = load_matrix()
    branch, architecture = matrix.last_driver_branch("1.0") or (0, "")
    assert branch == 340 and "Fermi" not in architecture and "Tesla" in architecture
    assert matrix.last_driver_branch("2.0") == (390, "Fermi")


def test_tensorflow_and_cuda_exceptions_are_data_with_a_source() -> None:
    rows = {row.release: row for row in load_matrix().tensorflow}
    assert rows["2.14"].and_cuda_python == ("3.9", "3.10")  # tensorflow#61986
    assert dict(rows["2.15"].and_cuda_versions) == {"2.15.0": "2.15.0.post1"}  # PR #62520
    assert rows["2.16"].and_cuda_python == () and rows["2.16"].and_cuda_versions == ()
    doc = json.loads((resources.files("dlbox.hostenv") / "matrix" / "tensorflow.json")
                     .read_text(encoding="utf-8"))
    for row in doc["releases"]:
        if "and_cuda_python" in row or "and_cuda_versions" in row:
            assert "github" in row["and_cuda_source"] or "#" in row["and_cuda_source"]
