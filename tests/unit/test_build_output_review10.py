"""Review 10 of `dlbox image build`'s output: a source build that fails in the deps stage
names its package and the Debian package to add; a failing sdist from the wheelhouse is
blamed on itself; the framework a project gets when it names none is said (and taken from a
package built on one); an environment.yml beside requirements.txt is said to be unread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlbox.container import build as B
from dlbox.container import engine
from dlbox.container import pins as PN
from dlbox.container.project import detect_project
from dlbox.errors import ContainerError

# Recorded: `pip install --no-deps -r lock.txt` (pycrypto==2.6.1, six==1.16.0) in
# dlbox-base:bookworm (pip 23.0.1, no C compiler), stdout and stderr together as a build
# step's output is.
PYCRYPTO_DEPS_OUTPUT = (Path(__file__).parents[1] / "fixtures" / "pip"
                        / "pycrypto-deps-stage.txt").read_text()

# Recorded: pip 23.0.1 in dlbox-base:bookworm resolving `attrs` and `badpkg==1.0` as dlbox's
# resolve does (--dry-run --report, --find-links to the wheelhouse), the wheelhouse holding a
# badpkg-1.0.tar.gz whose setup.py raises.
BADPKG_STDOUT = (
    'Looking in links: /tmp/dlbox-resolve/wheelhouse\n'
    'Collecting attrs\n'
    '  Downloading attrs-26.1.0-py3-none-any.whl (67 kB)\n'
    '     ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 67.5/67.5 kB 95.1 MB/s eta 0:00:00\n'
    'Processing /tmp/dlbox-resolve/wheelhouse/badpkg-1.0.tar.gz\n'
    '  Preparing metadata (setup.py): started\n'
    "  Preparing metadata (setup.py): finished with status 'error'\n"
)


BADPKG_STDERR = (
    '  error: subprocess-exited-with-error\n'
    '  \n'
    '  × python setup.py egg_info did not run successfully.\n'
    '  │ exit code: 1\n'
    '  ╰─> [6 lines of output]\n'
    '      Traceback (most recent call last):\n'
    '        File "<string>", line 2, in <module>\n'
    '        File "<pip-setuptools-caller>", line 34, in <module>\n'
    '        File "/tmp/pip-install-yrrk61gg/badpkg_f12ee3234c684ad985767c3f258734ee/setu'
    'p.py", line 1, in <module>\n'
    '          raise RuntimeError("badpkg: this sdist refuses to build (rev-hc test)")\n'
    '      RuntimeError: badpkg: this sdist refuses to build (rev-hc test)\n'
    '      [end of output]\n'
    '  \n'
    '  note: This error originates from a subprocess, and is likely not a problem with pi'
    'p.\n'
    'error: metadata-generation-failed\n'
    '\n'
    '× Encountered error while generating package metadata.\n'
    '╰─> See above for output.\n'
    '\n'
    'note: This is an issue with the package mentioned above, not pip.\n'
    'hint: See above for details.\n'
)

INSTRUCTION = ("RUN pip install --no-deps         --find-links=/opt/dlbox/wheelhouse         "
               "-r /opt/dlbox/requirements.lock.txt     && pip check")


class FailingApi:
    """The engine's event stream for a build whose deps stage's pip fails."""

    def build(self, **kwargs: Any) -> Any:
        yield {"stream": "Step 9/22 : COPY dlbox/requirements.lock.txt /opt/dlbox/\n"}
        yield {"stream": " ---> Using cache\n"}
        yield {"stream": f"Step 10/22 : {INSTRUCTION}\n"}
        yield {"stream": " ---> Running in 0123456789ab\n"}
        for line in PYCRYPTO_DEPS_OUTPUT.splitlines(keepends=True):
            yield {"stream": line}
        message = (f"The command '/bin/sh -c {INSTRUCTION[4:]}' returned a non-zero code: 1")
        yield {"error": message, "errorDetail": {"message": message}}


class FailingClient:
    api = FailingApi()


def test_a_source_build_failing_in_the_deps_stage_names_the_package_and_the_compiler(
        tmp_path: Path) -> None:
    """Review: the error said only that step 10/22 failed, with "the lines above show the
    failing command's output"; autoconf's "no acceptable C compiler" got no build-essential
    hint. The package is pycrypto (named by pip's error block), not six (collected last)."""
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    with pytest.raises(ContainerError) as caught:
        engine.build(FailingClient(), context)
    message = caught.value.message
    assert message.startswith("image build failed at step 10/22 (RUN pip install --no-deps")
    assert ": pip could not build pycrypto from source inside the image" in message
    assert "\n  configure: error: no acceptable C compiler found in $PATH" in message
    assert caught.value.hint == ("the base image lacks a C/C++ compiler: add the Debian "
                                 "package build-essential to the project's apt.txt and build "
                                 "again")


def test_a_failing_sdist_from_the_wheelhouse_is_blamed_on_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: requirements `attrs` and `badpkg==1.0`, the wheelhouse holding a
    badpkg-1.0.tar.gz that fails to build: the error named attrs (the last `Collecting`
    line; pip says `Processing FILE` for a wheelhouse's file)."""
    monkeypatch.setattr(engine, "run_captured", lambda *args, **kwargs: engine.Captured(
        1, BADPKG_STDOUT, BADPKG_STDERR))
    with pytest.raises(ContainerError) as caught:
        PN.resolve_pins(object(), "img", ["attrs", "badpkg==1.0"], (), (),
                        log=lambda line: None)
    assert caught.value.message == (
        "pip could not build badpkg==1.0 from source inside the image (no wheel of it fits "
        "the image, and its build failed):\n"
        "  RuntimeError: badpkg: this sdist refuses to build (rev-hc test)")


NO_FRAMEWORK = "the project names no framework: torch added (--framework to choose another)"


@pytest.mark.parametrize(("requirements", "framework", "note"), [
    ("six\n", "torch", NO_FRAMEWORK),
    ("flax==0.8.5\n", "jax", "the project names no framework, but flax is built on jax: "
                             "jax added (--framework to choose another)"),
    ("keras==3.3.3\ntensorflow-datasets\n", "tensorflow",
     "the project names no framework, but keras is built on tensorflow: tensorflow added "
     "(--framework to choose another)"),
    ("tensorflow-datasets\n", "tensorflow",
     "the project names no framework, but tensorflow-datasets is built on tensorflow: "
     "tensorflow added (--framework to choose another)"),
    ("timm\nnumpy\n", "torch", "the project names no framework, but timm is built on torch: "
                               "torch added (--framework to choose another)"),
    ("torch\nflax\n", "torch", None),  # named: no note
])
def test_the_framework_of_a_project_that_names_none_is_said(
        tmp_path: Path, requirements: str, framework: str, note: str | None) -> None:
    """Review: a `six`-only project got torch with no word of it; `flax==0.8.5` got a CUDA
    torch beside a CPU-only jax, `keras` with `tensorflow-datasets` torch."""
    (tmp_path / "requirements.txt").write_text(requirements)
    request = B.BuildRequest(project_dir=tmp_path, device="cpu")
    plan = B.plan(request)
    assert plan.framework == framework
    _, notes = B.dry_run(request)
    assert notes[0].startswith(f"{framework} ")
    said = [line for line in notes if "names no framework" in line]
    assert said == ([note] if note else [])
    assert list(plan.warnings) == said  # the build says it at its start and among its notes
    chosen = B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu", framework="jax"))
    assert chosen.framework == "jax" and not chosen.warnings  # --framework: nothing to say


def test_an_environment_yml_beside_requirements_txt_is_said_to_be_unread(
        tmp_path: Path) -> None:
    """Review: repo2docker takes environment.yml first; dlbox read requirements.txt alone,
    and said nothing of the environment.yml beside it."""
    (tmp_path / "requirements.txt").write_text("six\n")
    assert not [note for note in detect_project(tmp_path).notes if "environment" in note]
    (tmp_path / "environment.yml").write_text("dependencies:\n  - numpy\n")
    assert detect_project(tmp_path).notes == (
        "environment.yml (conda's) is not read: the image gets the packages of "
        "requirements.txt (list there those of environment.yml it needs)",)
