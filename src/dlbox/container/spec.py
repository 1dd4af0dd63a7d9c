"""ImageSpec: everything the Dockerfile depends on, as one frozen value.

`render.render_dockerfile(spec)` is a pure function of it, so the same spec always gives the
same Dockerfile text (golden-file tests hold it to that). The spec is filled from the project,
the resolved framework build and the lock by `build.spec_for`; nothing here probes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from dlbox import __version__
from dlbox.errors import UsageError

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"  # any Debian/Ubuntu image with apt works
BASE_IMAGE_ENV = "DLBOX_BASE_IMAGE"  # overrides the default base (scripts/test.sh sets it)
DEFAULT_PYTHON = "3.11"  # Python of the default base image (for --dry-run before a lock)
# Pythons with a Debian bookworm image of python's own (python:X.Y-slim-bookworm)
OFFICIAL_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
IMAGE_UID = 1000
IMAGE_GID = 1000
IMAGE_USER = "dlbox"
IMAGE_HOME = "/home/dlbox"
WORKDIR = "/workspace"  # the project's code; `image run --runs DIR` mounts DIR at ./runs
DATA_DIR = "/data"  # `image run --data DIR` mounts DIR here; DLBOX_DATA points at it
RUNS_DIR = f"{WORKDIR}/runs"
VENV = "/opt/venv"
TINI = "/usr/bin/tini"
# Paths inside the build context (the archive dlbox sends to the engine).
CONTEXT_PROJECT = "project"
CONTEXT_LOCK = "dlbox/requirements.lock.txt"
CONTEXT_WHEELHOUSE = "dlbox/wheelhouse"
CONTEXT_CA_CERT = "dlbox/extra-ca.crt"
# The NVIDIA Container Toolkit reads these: which GPUs and which driver libraries to mount.
NVIDIA_ENV = (
    ("NVIDIA_VISIBLE_DEVICES", "all"),
    ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
)
# For an image FROM nvidia/cuda (the cuda-system builds): its NVIDIA_REQUIRE_CUDA lets only
# the GA driver and some long-term branches through ("cuda>=11.8 brand=tesla,driver>=450,
# driver<451 ... driver>=470,driver<471"), so the toolkit refuses drivers that run CUDA 11.8
# under minor-version compatibility ("requirement error: unsatisfied condition: cuda>=11.8",
# review found for 455-469). dlbox checks the driver itself and its smoke test the GPU; the
# toolkit honours this switch (docs.nvidia.com/datacenter/cloud-native/container-toolkit,
# "Specialized Configurations with Docker", constraints; smallcloudai/refact issue #368).
NVIDIA_CUDA_BASE_ENV = (("NVIDIA_DISABLE_REQUIRE", "1"),)
# The registries that serve NVIDIA's CUDA images under the name nvidia/cuda: Docker Hub (as
# "nvidia/cuda", "docker.io/..." or "registry-1.docker.io/...") and NGC (nvcr.io).
_NVIDIA_CUDA_NAMES = ("nvidia/cuda", "docker.io/nvidia/cuda", "registry-1.docker.io/nvidia/cuda",
                      "index.docker.io/nvidia/cuda", "nvcr.io/nvidia/cuda")


def is_nvidia_cuda_image(ref: str) -> bool:
    """Whether the image reference names an nvidia/cuda image, however spelled: with or
    without a registry, by tag (nvidia/cuda:12.6.0-...) or by digest (nvidia/cuda@sha256:...)."""
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.lower() in _NVIDIA_CUDA_NAMES


@dataclass(frozen=True)
class CudaBaseImage:
    """A published nvidia/cuda image with CUDA and cuDNN installed, for builds that need them
    on the system (TensorFlow <= 2.13: "cuda-system")."""

    cuda: str  # "11.8": the CUDA release (major.minor) it carries
    cudnn: str  # "8": the cuDNN major version in its tag
    image: str  # the exact reference
    python: str  # its Ubuntu's python3, which the system stage uses when the base has one


# The exact tags, from NVIDIA's tag lists (gitlab.com/nvidia/container-images/cuda,
# doc/supported-tags.md and doc/unsupported-tags.md) and its 2023 deletion notice (quoted in
# NVIDIA/cudf-spark-examples PR #311): per CUDA minor only the last update release keeps its
# tags (11.2.2, not 11.2.0; 11.0.3, not 11.0), ubuntu22.04 images start at CUDA 11.7, 12.3+
# tags say `cudnn` without a version (12.4.1-cudnn-runtime-ubuntu22.04), and every CUDA 10.x,
# 9.x and 8.0 tag is gone. 11.2.2 and 11.0.3 are on NVIDIA's "unsupported" list (still pulled,
# no more security updates). Ubuntu 20.04 for those also gives Python 3.8, which every
# TensorFlow 2.4-2.11 supports (22.04's 3.10 does not fit 2.4-2.7).
CUDA_BASE_IMAGES = (
    CudaBaseImage("11.8", "8", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "3.10"),
    CudaBaseImage("11.2", "8", "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04", "3.8"),
    CudaBaseImage("11.0", "8", "nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04", "3.8"),
)
REMOVED_CUDA_BELOW = 11  # NVIDIA deleted every nvidia/cuda tag of CUDA 10.x and older (2023)


@dataclass(frozen=True)
class FrameworkBuild:
    """The framework build an image carries (what the resolver or the lock chose)."""

    name: str  # "torch" | "tensorflow" | "jax"
    version: str  # exact, as pinned: "2.13.0+cpu"
    variant: str  # "cpu" | "cu126" | "and-cuda" | "cuda12" | ...
    cuda: str | None = None
    cudnn: str | None = None
    wheel_index: str | None = None  # extra index holding this build (torch's variants)
    min_driver: str | None = None

    @property
    def gpu(self) -> bool:
        return self.variant != "cpu"


@dataclass(frozen=True)
class ImageSpec:
    project_name: str
    project_kind: str  # "builtin" | "pyproject" | "requirements"
    framework: FrameworkBuild
    base_image: str
    install_project: bool = False  # pip install --no-deps the project after copying it
    project_version: str | None = None
    base_digest: str | None = None  # "sha256:..." of the base image, when known
    python: str | None = None  # Python of the image, "3.11.2", when known
    index_url: str | None = None  # replaces PyPI (requirements.txt -i)
    extra_index_urls: tuple[str, ...] = ()
    pip_flags: tuple[str, ...] = ()  # "--pre", "--trusted-host=host", ...
    wheelhouse: bool = False  # wheels shipped in the context (dlbox/wheelhouse)
    # False when the wheelhouse holds the framework wheel: pip then never asks the framework's
    # own index (unreachable offline or behind a proxy, and slow to time out).
    use_wheel_index: bool = True
    offline: bool = False  # pip --no-index: every pinned requirement is in the wheelhouse
    ca_cert: bool = False  # an extra CA certificate in the context (dlbox/extra-ca.crt)
    system_packages: tuple[str, ...] = ()  # Debian packages from the project's apt.txt
    command: tuple[str, ...] = ("python3",)
    lock_sha256: str | None = None
    dlbox_version: str = __version__
    uid: int = IMAGE_UID
    gid: int = IMAGE_GID
    extra_labels: tuple[tuple[str, str], ...] = field(default=())

    @property
    def gpu(self) -> bool:
        return self.framework.gpu

    @property
    def device(self) -> str:
        return "gpu" if self.gpu else "cpu"


PROJECT_LABEL = "dlbox.project"  # on every image dlbox builds
DEPS_STAGE_LABEL = "dlbox.stage"  # "deps" on the deps stage (deps_install.Dockerfile)
# Which project folder an image was built from: two folders of the same name get the same
# default tag, and a build must not remove the other's image. Given to the engine with the
# build (not in the Dockerfile, which stays the same wherever the project lies).
SOURCE_LABEL = "dlbox.project.source"


# A digest of the project files an image got (context.project_digest): `image run` warns
# when the folder's files no longer match, as the image runs the code of its build.
FILES_LABEL = "dlbox.project.files"


def source_id(root: Path) -> str:
    """The SOURCE_LABEL of a project folder: a digest of its resolved path (the path itself,
    a home folder's user name in it, stays out of an image that may be pushed)."""
    return hashlib.sha256(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:16]


def built_from_elsewhere(labels: dict[str, str] | None, root: Path) -> bool:
    """Whether an image's labels say another project folder built it (no label: unknown,
    as for an image an older dlbox built, so not elsewhere)."""
    source = (labels or {}).get(SOURCE_LABEL)
    return bool(source) and source != source_id(root)


def image_labels(spec: ImageSpec) -> tuple[tuple[str, str], ...]:
    """The image's labels, sorted: OCI annotations plus the resolved tuple under dlbox.*."""
    fw = spec.framework
    labels: dict[str, str | None] = {
        "org.opencontainers.image.title": spec.project_name,
        "org.opencontainers.image.version": spec.project_version,
        "org.opencontainers.image.description": (
            f"{spec.project_name} with {fw.name} {fw.version} ({spec.device})"),
        "org.opencontainers.image.base.name": spec.base_image,
        "org.opencontainers.image.base.digest": spec.base_digest,
        "dlbox.version": spec.dlbox_version,
        PROJECT_LABEL: spec.project_name,
        "dlbox.project.kind": spec.project_kind,
        "dlbox.python": spec.python,
        "dlbox.framework": fw.name,
        "dlbox.framework.version": fw.version,
        "dlbox.framework.variant": fw.variant,
        "dlbox.device": spec.device,
        "dlbox.cuda": fw.cuda,
        "dlbox.cudnn": fw.cudnn,
        "dlbox.min_driver": fw.min_driver,
        "dlbox.wheel_index": fw.wheel_index,
        "dlbox.user": f"{spec.uid}:{spec.gid}",
        "dlbox.lock.sha256": spec.lock_sha256,
    }
    labels.update(dict(spec.extra_labels))
    return tuple(sorted((key, value) for key, value in labels.items() if value))


def default_tag(project_image_name: str, framework: FrameworkBuild) -> str:
    """`dlbox:cpu`, `dlbox:cu126`, `myproj:tensorflow-and-cuda`: one tag per build kind."""
    variant = re.sub(r"[^a-z0-9._-]+", "-", framework.variant.lower())
    if framework.name == "torch":
        return f"{project_image_name}:{variant}"
    return f"{project_image_name}:{framework.name}-{variant}"


# Docker's reference grammar (distribution/reference): [host[:port]/]path[/path...][:tag]
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG_RE = re.compile(rf"(?P<name>{_NAME})(?::[\w][\w.-]{{0,127}})?", re.ASCII)
_DIGEST_RE = re.compile(rf"(?:(?P<name>{_NAME})@)?sha256:[0-9a-f]{{64}}")
_ID_RE = re.compile(r"[0-9a-f]{12,64}")


def check_tag(tag: str, flag: str = "--tag") -> str:
    """`tag` if it is a valid NAME[:TAG] for the engine, else a UsageError saying why."""
    match = _TAG_RE.fullmatch(tag)
    if match and len(match.group("name")) <= 255:
        return tag
    why = ("names are lowercase" if tag.lower() != tag and _TAG_RE.fullmatch(tag.lower())
           else "expected NAME[:TAG], e.g. myproject:gpu or registry:5000/team/app:v1")
    raise UsageError(f"{flag} {tag!r} is not a valid image name: {why}",
                     hint="use lowercase letters, digits and . _ - in the name; the tag after "
                          "':' may hold letters, digits, . _ - (at most 128)")


def check_image_reference(reference: str, flag: str = "--tag") -> str:
    """An image to run: NAME[:TAG], NAME@sha256:..., or an image id."""
    if _DIGEST_RE.fullmatch(reference) or _ID_RE.fullmatch(reference):
        return reference
    try:
        return check_tag(reference, flag)
    except UsageError as error:  # an image to run may also be named by digest or id: say so
        raise UsageError(error.message.replace("expected NAME[:TAG]",
                                               "expected NAME[:TAG], NAME@sha256:DIGEST or an "
                                               "image id"), hint=error.hint) from None
