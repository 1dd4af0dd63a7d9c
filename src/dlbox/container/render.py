"""ImageSpec -> Dockerfile text: a pure, deterministic function over the templates.

The templates in `container/templates/` are Dockerfile fragments with `{{name}}` holes; the
logic here only picks fragments and fills holes (quoted for the shell or as JSON where the
Dockerfile needs it). Same spec in, same bytes out: no clock, no environment, no probing.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from functools import cache
from importlib import resources

from dlbox.container import spec as S
from dlbox.container.spec import ImageSpec, image_labels

_HOLE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@cache
def load_template(name: str) -> str:
    return (resources.files("dlbox.container") / "templates" / name).read_text(encoding="utf-8")


def fill(template: str, values: Mapping[str, object]) -> str:
    """Replace every {{name}}; a hole without a value is a bug, so it raises KeyError."""

    def replace(match: re.Match[str]) -> str:
        return str(values[match.group(1)])

    return _HOLE.sub(replace, template)


def _one_line(text: str) -> str:
    """Line breaks as spaces: in a Dockerfile one would end the instruction or comment."""
    return re.sub(r"[\r\n]+", " ", text)


def dockerfile_string(value: str) -> str:
    """A double-quoted Dockerfile string (LABEL / ENV values) that the engine reads back as
    `value` (on one line), with no $VAR expansion."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + _one_line(escaped) + '"'


def pip_index_options(spec: ImageSpec) -> tuple[str, ...]:
    """The pip arguments that say where packages come from, in a fixed order."""
    options: list[str] = []
    if spec.offline:
        options.append("--no-index")
    else:
        if spec.index_url:
            options.append(f"--index-url={spec.index_url}")
        extra = list(spec.extra_index_urls)
        if (spec.use_wheel_index and spec.framework.wheel_index
                and spec.framework.wheel_index not in extra):
            extra.insert(0, spec.framework.wheel_index)
        options += [f"--extra-index-url={url}" for url in extra]
    if spec.wheelhouse:
        options.append("--find-links=/opt/dlbox/wheelhouse")
    options += list(spec.pip_flags)
    return tuple(options)


def _continued(options: tuple[str, ...]) -> str:
    # One option per line keeps the RUN line readable and diffs small.
    return "".join(f" \\\n        {shlex.quote(option)}" for option in options)


def _framework_line(spec: ImageSpec) -> str:
    fw = spec.framework
    parts = [f"{fw.name} {fw.version} ({fw.variant})"]
    if fw.cuda:
        parts.append(f"CUDA {fw.cuda}" + (f", cuDNN {fw.cudnn}" if fw.cudnn else ""))
    if fw.min_driver:
        parts.append(f"NVIDIA driver >= {fw.min_driver}")
    parts.append(f"Python {spec.python}" if spec.python else "Python of the base image")
    return "; ".join(parts)


def _labels(spec: ImageSpec) -> str:
    return " \\\n      ".join(f"{key}={dockerfile_string(value)}"
                             for key, value in image_labels(spec))


def _extra_env(spec: ImageSpec) -> str:
    pairs: tuple[tuple[str, str], ...] = S.NVIDIA_ENV if spec.gpu else ()
    if spec.gpu and (spec.framework.variant == "cuda-system"
                     or S.is_nvidia_cuda_image(spec.base_image)):
        # FROM an nvidia/cuda image (spec.py says why)
        pairs += S.NVIDIA_CUDA_BASE_ENV
    return "".join(f" \\\n    {key}={value}" for key, value in pairs)


def render_dockerfile(spec: ImageSpec) -> str:
    values = {
        "project": _one_line(spec.project_name),
        "dlbox_version": spec.dlbox_version,
        "framework_line": _framework_line(spec),
        "device": spec.device,  # the re-render command's --cpu / --gpu
        "base_image": spec.base_image,
        "tini": S.TINI,
        "uid": spec.uid,
        "gid": spec.gid,
        "user": S.IMAGE_USER,
        "home": S.IMAGE_HOME,
        "workdir": S.WORKDIR,
        "data_dir": S.DATA_DIR,
        "venv": S.VENV,
        "context_ca_cert": S.CONTEXT_CA_CERT,
        "context_lock": S.CONTEXT_LOCK,
        "context_wheelhouse": S.CONTEXT_WHEELHOUSE,
        "context_project": S.CONTEXT_PROJECT,
        "pip_options": _continued(pip_index_options(spec)),
        "extra_env": _extra_env(spec),
        "command": json.dumps(list(spec.command)),
        "labels": _labels(spec),
        "system_packages": " ".join(spec.system_packages),
    }
    parts = ["header.Dockerfile", "system.Dockerfile"]
    if spec.ca_cert:
        parts.append("ca_cert.Dockerfile")
    if spec.system_packages:
        parts.append("system_packages.Dockerfile")
    parts += ["venv.Dockerfile", "deps.Dockerfile"]
    if spec.wheelhouse:
        parts.append("wheelhouse.Dockerfile")
    parts += ["deps_install.Dockerfile", "image.Dockerfile"]
    if spec.install_project:
        parts.append("install_project.Dockerfile")
    parts.append("final.Dockerfile")
    return "".join(fill(load_template(name), values) for name in parts)


def render_lock_requirements(pinned: tuple[str, ...], header: str = "") -> str:
    """The requirements file the deps stage installs: one pin a line, sorted."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines += sorted(pinned, key=str.lower)
    return "\n".join(lines) + "\n"
