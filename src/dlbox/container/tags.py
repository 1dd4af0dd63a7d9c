"""The names a build leaves on the engine: the dependency stage's tag (so a code-only
rebuild reuses it), the tag kept on a build whose smoke test failed, and the untagged
images a rebuild replaced."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.errors import ContainerError


def remove_replaced(client: Any, replaced: dict[str, tuple[list[str], dict[str, Any]]],
                     root: Path) -> list[str]:
    """Each rebuild moves the tags to a new image; the old one, untagged, would keep its
    layers (a dependency change: gigabytes) until `docker image prune`. Remove it, unless a
    container still uses it, or another project folder (of the same name: the same default
    tag) built it. `replaced`: image id -> (the tags this build took from it, its data)."""
    notes = []
    for image_id, (tags, data) in sorted(replaced.items()):
        short = image_id.removeprefix("sha256:")[:12]
        if S.built_from_elsewhere(engine.image_labels(data), root):
            notes.append(f"{', '.join(tags)} named the image of another project folder called "
                         f"{root.name!r}; this build took the name, and that image is kept "
                         f"untagged as {short}: `docker tag {short} NAME:TAG` names it again "
                         "(build each folder with its own --tag to keep both)")
            continue
        outcome = engine.remove_replaced_image(client, image_id, S.PROJECT_LABEL)
        if outcome == "removed":
            notes.append(f"removed the image this build replaced ({short})")
        elif outcome == "in use":
            notes.append(f"the image this build replaced ({short}) is kept: a container "
                         f"uses it (docker ps -a --filter ancestor={short}); docker image "
                         "prune removes it once that container is gone")
    return notes


_STEP_IMAGE = re.compile(r"^---> ([0-9a-f]{12,64})$")


_FINAL_STAGE = re.compile(r"^Step \d+/\d+ : FROM system$")


def deps_stage_image(log: Sequence[str]) -> str | None:
    """The image the deps stage ended in, from the engine's build output: the last step's
    ` ---> ID` before the image stage (`FROM system`) begins. None when not found."""
    last = None
    for line in log:
        text = line.strip()
        if _FINAL_STAGE.match(text):
            return last
        if match := _STEP_IMAGE.match(text):
            last = match.group(1)
    return None


def last_step_image(log: Sequence[str]) -> str | None:
    """The image of the last step that ended (its ` ---> ID`) in the engine's build output;
    None when no step ended."""
    images = [match.group(1) for line in log if (match := _STEP_IMAGE.match(line.strip()))]
    return images[-1] if images else None


_DEPS_STAGE_START = re.compile(r"^Step \d+/\d+ : FROM venv AS deps$")


def deps_step_images(log: Sequence[str]) -> list[str]:
    """The images of the deps stage's steps that ended (the lock's COPY, the wheelhouse's),
    from the engine's build output, oldest first; not its FROM's (the venv stage's image).
    Empty when the build did not reach the stage."""
    images: list[str] | None = None
    for line in log:
        text = line.strip()
        if _FINAL_STAGE.match(text):  # the image stage begins: the deps stage ended
            break
        if _DEPS_STAGE_START.match(text):
            images = []
        elif images is not None and (found := last_step_image([text])):
            images.append(found)
    # the FROM's own ` ---> ID` is the first after its line
    return images[1:] if images else []


def _side_tag(tag: str, suffix: str) -> str:
    """`p1:cpu` -> `p1:cpu-SUFFIX`: a name beside the image's (its deps stage, a failed
    build); the tag part stays within the engine's 128 characters."""
    repository, name = engine.split_tag(tag)
    return f"{repository}:{name[:127 - len(suffix)]}-{suffix}"


def failed_tag(tag: str) -> str:
    """`p1:cpu` -> `p1:cpu-failed`: where an image that failed its smoke test is kept."""
    return _side_tag(tag, "failed")


def deps_tag(tag: str) -> str:
    """`p1:cpu` -> `p1:cpu-deps`: where the deps stage is kept."""
    return _side_tag(tag, "deps")


def _move_name(client: Any, image_id: str, name: str,
               label: str) -> tuple[str, dict[str, Any] | None]:
    """Tag `image_id` as `name` too, and remove the image `name` named before when dlbox made
    it (it carries `label`) and nothing else names it now. Returns (outcome, the image `name`
    named before): "theirs" when that image lacks `label` (the user's own: left alone, and
    `name` not moved), "none" when no other image was replaced, else remove_replaced_image's
    outcome ("removed", "in use", "kept")."""
    old = engine.inspect_image(client, name)
    if old and label not in engine.image_labels(old):
        return "theirs", old
    engine.tag_image(client, image_id, [name])
    new = engine.inspect_image(client, name)
    if not old or not new or old.get("Id") == new.get("Id"):
        return "none", old
    return engine.remove_replaced_image(client, old["Id"], label), old


def keep_failed(client: Any, image_id: str, name: str) -> str:
    """Tag an image that failed its smoke test as `name` (NAME:TAG-failed) for a look, and
    remove the failed image it replaces: untagged, one would pile up per attempt. The name
    to show the user; the image's id when `name` is taken by an image dlbox did not build."""
    try:
        outcome, _ = _move_name(client, image_id, name, S.PROJECT_LABEL)
    except ContainerError:  # housekeeping: the smoke test's failure is what the user needs
        return image_id
    return image_id if outcome == "theirs" else name


def drop_failed(client: Any, name: str, label: str = S.PROJECT_LABEL) -> list[str]:
    """After a build that passed, the image an earlier attempt kept as NAME:TAG-failed (and
    its deps stage, NAME:TAG-failed-deps: `label` S.DEPS_STAGE_LABEL) is of no more use:
    remove it (its tag, and the image unless a container uses it or another tag names it)."""
    import docker

    data = engine.inspect_image(client, name)
    if label not in engine.image_labels(data):
        return []
    try:
        client.api.remove_image(name)
    except docker.errors.APIError as error:
        return [f"left {name} (the image an earlier build kept when its smoke test failed): "
                f"{engine.api_error_text(error)}"]
    except docker.errors.DockerException:
        return []
    return [f"removed {name}, the image an earlier build kept when its smoke test failed"]


def tag_deps_stage(client: Any, log: Sequence[str], tag: str) -> list[str]:
    """Tag the deps stage beside the image, and remove the deps stage it replaces; `log`:
    the build's output, which names the stage's image (nothing to do when it names none).

    The engine keeps a multi-stage build's deps stage as an untagged image: it is the cache
    that makes a code-only rebuild fast, and as big as the venv (gigabytes). After a
    dependency change nothing referred to the old one, and every relock left one behind
    until `docker image prune` (which also throws away the current cache). Tagged, the
    cache survives a prune, and the next dependency change frees the old one."""
    deps = deps_stage_image(log)
    if deps is None:
        return []
    name = deps_tag(tag)
    try:
        outcome, old = _move_name(client, deps, name, S.DEPS_STAGE_LABEL)
    except ContainerError as error:  # the image is built and tagged: this is housekeeping
        return [f"the dependency stage {deps[:19]} is left untagged: {error.message}"]
    if outcome == "theirs":  # NAME:TAG-deps is an image dlbox did not make: left alone
        return [f"the dependency stage {deps[:19]} is left untagged: {name} names an "
                "image that is not a dlbox dependency stage"]
    if outcome != "removed" or old is None:
        return []
    short = old["Id"].removeprefix("sha256:")[:12]
    return [f"removed the dependency stage this build replaced ({short})"]
