"""The CLI starts without importing torch (about 3 s here) for what does not need it:
--help, --version, `doctor`, `data fetch`; torch loads only in the commands that use it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from dlbox.data.synthetic import write_fake_cifar10_archive


def _imports_torch(argv: list[str], tmp_path: Path) -> tuple[int, bool]:
    code = (
        "import sys\n"
        "from dlbox.cli import main\n"
        f"try:\n    code = main({argv!r})\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    code_text, imported = out.stdout.strip().splitlines()[-1].split()
    return int(code_text or 0), imported == "True"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"],
                                  ["doctor", "--json"], ["image", "build", "--help"]])
def test_commands_that_need_no_torch_do_not_import_it(argv: list[str], tmp_path: Path) -> None:
    code, imported = _imports_torch(argv, tmp_path)
    assert code in (0, 1)  # doctor exits 1 when the host has an error finding
    assert not imported


def test_data_fetch_needs_no_torch_but_data_check_loads_it(tmp_path: Path) -> None:
    archive = write_fake_cifar10_archive(tmp_path / "cifar-10-python.tar.gz")
    data = tmp_path / "data"
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert _imports_torch(["data", "fetch", "--data", str(data), "--from", str(archive),
                           "--sha256", sha], tmp_path) == (0, False)
    assert _imports_torch(["data", "check", "--data", str(data)], tmp_path) == (0, True)


def test_the_data_package_loads_its_parts_on_first_use() -> None:
    code = (
        "import sys\n"
        "import dlbox.data\n"
        "before = 'torch' in sys.modules\n"
        "names = dir(dlbox.data)\n"
        "assert 'load_dataset' in names and 'loading' in names, names\n"
        "assert dlbox.data.loading.load_dataset is dlbox.data.load_dataset\n"
        "assert dlbox.data.CIFAR10_CLASSES[0] == 'airplane'\n"
        "try:\n    dlbox.data.nothing_here\nexcept AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('no AttributeError')\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    """`dlbox models | head -1`: the reader goes before dlbox writes; no traceback."""
    process = subprocess.Popen([sys.executable, "-m", "dlbox", "models"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_ctrl_c_while_the_commands_import_is_a_word_not_a_traceback(tmp_path: Path) -> None:
    # Ctrl-C lands while build_parser() imports the subcommands (the first ~0.15 s): the
    # KeyboardInterrupt is raised from inside that import, as the signal would raise it.
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'dlbox.cli.train':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from dlbox.cli import main\n"
        "sys.exit(main(['--help']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 130
    assert out.stderr == "interrupted\n"
    assert out.stdout == ""
