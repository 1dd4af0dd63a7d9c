"""`dlbox notebook --container`: JupyterLab inside the dlbox image, as a non-root user.

- The token is a 0600 file on the host, bind-mounted read-only into the container and named
  by JUPYTER_TOKEN_FILE: `docker inspect` shows the file's path, never the token.
- The container runs as the caller's uid:gid (so files it writes in the mounted notebooks
  folder belong to the caller), or as uid 1000 when the caller is root: never as root.
- The port is published on 127.0.0.1 unless --ip says otherwise; Jupyter listens on all
  interfaces of the container's own network namespace, which only the published port reaches.
- Ctrl-C (or SIGTERM to dlbox) stops the container (SIGTERM to its init, then Jupyter's clean
  shutdown) and removes it; a start that fails or is interrupted after the engine created the
  container (never started, so never handed back) removes it by the name dlbox gave it.
- GPUs as `dlbox image run` gives them by default: all for a GPU image (its dlbox.device
  label), after the same check of the host (driver, GPU, NVIDIA runtime), whose failure is an
  error, never a silent CPU notebook; none for another image, with NVIDIA_VISIBLE_DEVICES=void
  (review: the container of a GPU image never got a GPU).
"""

from __future__ import annotations

import os
import secrets as pysecrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlbox.container.owner import OWNER_LABEL, owner_id, remove_orphaned
from dlbox.container.run import (
    DEVICE_LABEL,
    NO_GPU_ENV,
    container_user,
    gpu_blocker,
    host_facts,
    parse_gpus,
    writable_by,
)
from dlbox.container.spec import DATA_DIR
from dlbox.errors import HostEnvError, UsageError
from dlbox.jupyter.server import (
    ManagedServer,
    ServerInfo,
    on_read_only_filesystem,
    read_only_warning,
    resolve_port,
)
from dlbox.jupyter.settings import (
    NOTEBOOK_CONTAINER_ENV,
    NOTEBOOK_NAME,
    TOKEN_FILE_ENV,
    NotebookSettings,
    all_interfaces_warning,
    lab_config,
    listens_on_all_interfaces,
    new_token,
    server_base_url,
)

if TYPE_CHECKING:
    from dlbox.container.engine import GpuRequest

CONTAINER_PORT = 8888
CONTAINER_NOTEBOOK_DIR = "/workspace/notebooks"
CONTAINER_TOKEN_FILE = "/run/dlbox/jupyter_token"
CONTAINER_CONFIG_FILE = "/run/dlbox/dlbox_jupyter_config.json"
LABEL = "dlbox.notebook"
# Variables passed through from the caller's environment to the notebook's kernel.
PASSTHROUGH_ENV = ("DLBOX_NOTEBOOK_SMOKE",)
STOP_TIMEOUT_S = 15
DEFAULT_IMAGE = "dlbox:cpu"  # what `dlbox image build --cpu` tags the built-in project


def default_image_tag() -> str:
    return DEFAULT_IMAGE


def builtin_build_command() -> str:
    """How to build dlbox's own CPU image from here: in a project's folder, `dlbox image
    build` builds that project instead; an installed dlbox (no checkout of its own) builds
    it from a checkout passed as PROJECT_DIR, wherever it runs."""
    from dlbox.container.project import CHECKOUT_PLACEHOLDER, default_project_dir
    from dlbox.container.project import builtin_build_command as build_command

    command = build_command()
    if CHECKOUT_PLACEHOLDER in command:
        return f"`{command} --cpu` ({CHECKOUT_PLACEHOLDER}: the folder of a dlbox checkout)"
    try:
        here = default_project_dir()
    except UsageError:  # the current folder is gone: nothing here to build instead
        here = None
    if here is None:
        return "`dlbox image build --cpu`"
    return ("`dlbox image build --cpu` in a folder without requirements.txt, pyproject.toml "
            "or setup.py (here it builds this project)")


def container_command(config_file: str) -> list[str]:
    """What runs in the container (no secret in it: it is visible to `docker inspect`)."""
    return ["python3", "-m", "jupyterlab", f"--config={config_file}", "--no-browser"]


def container_environment(host_env: dict[str, str], has_data: bool) -> dict[str, str]:
    env = {
        TOKEN_FILE_ENV: CONTAINER_TOKEN_FILE,
        # The caller's uid may have no home in the image, yet Jupyter, IPython and matplotlib
        # need writable places; /tmp always is.
        "HOME": "/tmp/dlbox-home",
        "JUPYTER_RUNTIME_DIR": "/tmp/dlbox-home/jupyter-runtime",
        "MPLCONFIGDIR": "/tmp/dlbox-home/matplotlib",
        "PYTHONUNBUFFERED": "1",
        # The image's own tini (its entrypoint) runs under the engine's init (init=True, for
        # images without one): as a subreaper it reaps as well, without warning in the log
        # that it is "not running as PID 1".
        "TINI_SUBREAPER": "1",
        NOTEBOOK_CONTAINER_ENV: "1",  # the notebook's hint to get CIFAR-10 says where
    }
    if has_data:
        env["DLBOX_DATA"] = DATA_DIR
    for name in PASSTHROUGH_ENV:
        if name in host_env:
            env[name] = host_env[name]
    return env


def unwritable_warning(notebook_dir: Path, uid: int, gid: int) -> str | None:
    """The warning for a notebook folder, or its notebook file, that the container's user
    cannot write (review: after `chown 1000` of the folder, the notebook file, still root's
    and 0644, could not be saved: 403 Permission denied); None when both are writable."""
    notebook = notebook_dir / NOTEBOOK_NAME
    for path in (notebook_dir, notebook):
        if path.exists() and not writable_by(path, uid, gid):
            return (f"warning: the container's user (uid {uid}) cannot write to {path}: the "
                    f"notebook cannot be saved there. Run dlbox as a normal user, or: chown -R "
                    f"{uid} {notebook_dir}")
    return None


def image_gpus(image: str, labels: dict[str, str],
               facts: Callable[[], Any] = host_facts) -> GpuRequest | None:
    """The GPUs of the notebook container, as `dlbox image run` gives them without --gpus:
    all for a GPU image, when the host can give them (a HostEnvError naming what is missing
    when it cannot); None for any other image (the host not asked)."""
    gpus = parse_gpus(None, labels.get(DEVICE_LABEL))
    if gpus is None:
        return None
    blocker = gpu_blocker(facts(), cpu_way="leave --tag out for dlbox's CPU image (or pass "
                                           "--tag a CPU image: dlbox image build --cpu)")
    if blocker is not None:
        raise HostEnvError(f"{image} is a GPU image, so its notebook container asks for "
                           f"{gpus.describe()}, but {blocker[0]}", hint=blocker[1])
    return gpus


def run_request(image: str, settings: NotebookSettings, host_port: int, uid: int, gid: int,
                token_file: Path, config_file: Path, data_dir: Path | None,
                name: str, gpus: GpuRequest | None = None) -> Any:
    """The engine's RunRequest for the notebook container; `gpus` None: no GPU, even where
    the NVIDIA runtime is Docker's default (NVIDIA_VISIBLE_DEVICES=void)."""
    from dlbox.container.engine import Mount, RunRequest

    mounts = [
        Mount(str(settings.notebook_dir), CONTAINER_NOTEBOOK_DIR),
        Mount(str(token_file), CONTAINER_TOKEN_FILE, read_only=True),
        Mount(str(config_file), CONTAINER_CONFIG_FILE, read_only=True),
    ]
    if data_dir is not None:
        mounts.append(Mount(str(data_dir), DATA_DIR, read_only=True))
    environment = container_environment(dict(os.environ), data_dir is not None)
    if gpus is None:
        environment.setdefault(*NO_GPU_ENV)
    return RunRequest(
        image=image,
        command=tuple(container_command(CONTAINER_CONFIG_FILE)),
        gpus=gpus,
        mounts=tuple(mounts),
        user=f"{uid}:{gid}",
        environment=tuple(sorted(environment.items())),
        workdir=CONTAINER_NOTEBOOK_DIR,
        name=name,
        ports=((CONTAINER_PORT, host_port),),
        host_ip=publish_ip(settings.ip),
        init=True,  # an init as PID 1 passes SIGTERM on and reaps the kernels
        labels=((LABEL, "1"), (OWNER_LABEL, owner_id())),
        shm_size="1g",  # DataLoader workers in the notebook need more than 64 MB
        cap_drop=("ALL",),  # Jupyter and its kernels need no Linux capability
        no_new_privileges=True,  # nor can a setuid binary in the image raise them
    )


def publish_ip(ip: str) -> str:
    """The host address the container's port is published on (the engine wants an IP)."""
    return "127.0.0.1" if ip == "localhost" else ip


def remove_orphans(client: Any, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop and remove the notebook containers whose dlbox was killed; their names."""
    return remove_orphaned(client, LABEL, stop_timeout=timeout_s)


class ContainerServer(ManagedServer):
    """JupyterLab in a container of the dlbox image, through dlbox.container.engine."""

    stop_timeout_s = STOP_TIMEOUT_S

    def __init__(self, settings: NotebookSettings) -> None:
        # Imported now, before the stop handlers are in place: a SIGTERM that arrived during
        # torch's import (the data dir's check needs it) was lost, the server left running.
        import dlbox.data.loading  # noqa: F401
        # Not `pip install` on the host: the image is what lacks JupyterLab, or fails to run it.
        # (Before the launch's folder is made: nothing of it may outlive a failure here.)
        stopped_hint = ("read the container log above; the image needs JupyterLab and "
                        "ipykernel (dlbox's `notebook` extra): "
                        f"{builtin_build_command()} builds one, or pass --tag IMAGE")
        super().__init__(settings)
        self.stopped_hint = stopped_hint
        self.image = settings.image or default_image_tag()
        self.client: Any = None
        self.host_port: int | None = None  # checked free on the host by prepare()
        self.user: tuple[int, int] = container_user(os.geteuid(), os.getegid())
        self.container: Any = None
        self.facts: Callable[[], Any] = host_facts  # this host, for a GPU image's check
        self.gpus: GpuRequest | None = None  # set by prepare(), from the image's label
        # The name given to the container before asking the engine for it: a start that
        # fails or is interrupted half-way (created, never started) is removed by name.
        self.container_name: str | None = None

    def _prepare(self) -> list[str]:
        from dlbox.container import engine

        settings = self.settings
        self.client = engine.connect()
        data = engine.inspect_image(self.client, self.image)
        if data is None:
            # a usage error (exit 2), as for `dlbox image run --tag` of a missing image
            raise UsageError(f"the image {self.image} is not on this machine",
                             hint="check its name (docker images lists those here), or "
                                  "leave --tag out for dlbox's CPU image" if settings.image
                             else f"build it with {builtin_build_command()} (or pass "
                                  "--tag IMAGE)")
        self.gpus = image_gpus(self.image, engine.image_labels(data), self.facts)
        warnings = [f"note: removed notebook container {name}: the dlbox that started it "
                    "was killed" for name in remove_orphans(self.client)]
        # The engine publishes the port on this host's address: the same check as locally.
        self.host_port = resolve_port(publish_ip(settings.ip), settings.port)
        if listens_on_all_interfaces(settings.ip):
            warnings.append(all_interfaces_warning(settings.ip, self.host_port))
        uid, gid = self.user
        if on_read_only_filesystem(settings.notebook_dir):  # whatever the mode bits say
            warnings.append(read_only_warning(settings.notebook_dir, "the container"))
        else:
            unwritable = unwritable_warning(settings.notebook_dir, uid, gid)
            if unwritable is not None:
                warnings.append(unwritable)
        return warnings

    def _launch(self) -> ServerInfo:
        from dlbox.container import engine

        settings = self.settings
        assert self.host_port is not None, "prepare() first"
        host_port = self.host_port
        uid, gid = self.user
        token = new_token()
        # Root on the host gives the file to the container's user; it stays 0600.
        chown = (uid, gid) if os.geteuid() == 0 else (None, None)
        token_file = self.launch.write_token(token, *chown)
        config = lab_config(CONTAINER_NOTEBOOK_DIR, "0.0.0.0", CONTAINER_PORT, allow_root=False)
        config_file = self.launch.write_config(config)
        os.chmod(config_file, 0o644)
        data_dir = _host_data_dir()
        name = f"dlbox-notebook-{host_port}-{pysecrets.token_hex(3)}"
        request = run_request(self.image, settings, host_port, uid, gid, token_file,
                              config_file, data_dir, name=name, gpus=self.gpus)
        self.container_name = name
        self.container = engine.start_container(self.client, request)
        return ServerInfo(server_base_url(settings.ip, host_port), token, settings.notebook_dir,
                          None)

    def _log_tail(self) -> str:
        if self.container is None:
            return ""
        return str(self.container.logs(tail=40).decode("utf-8", "replace"))

    def _exit_reason(self) -> str | None:
        if self.container is None:
            return None
        try:
            self.container.reload()
        except Exception as error:  # noqa: BLE001 - removed under our feet
            return f"the container vanished ({_short(error)})"
        if self.container.status in ("created", "running"):
            return None
        logs = self.container.logs(tail=40).decode("utf-8", "replace")
        code = self.container.attrs.get("State", {}).get("ExitCode")
        return f"container exited with status {code}\n--- container log ---\n{logs}"

    def wait(self) -> int:
        from dlbox.container.engine import wait_exit_code

        assert self.container is not None
        return wait_exit_code(self.container)

    def _halt(self, timeout_s: float) -> None:
        from dlbox.container import engine
        from dlbox.container.engine import remove_container, stop_container

        if self.container is not None:
            if timeout_s > 0:
                stop_container(self.container, timeout_s)
            remove_container(self.container)  # forced: kills it if it still runs
        elif self.container_name is not None and self.client is not None:
            # The start failed or was interrupted (Ctrl-C) between the engine's create and
            # start: a container in state "created" may exist that no one holds.
            engine.remove_by_name(self.client, self.container_name)
        self.container = self.container_name = None


def _host_data_dir() -> Path | None:
    """The CIFAR-10 folder `dlbox data fetch` filled, to mount read-only, if there is one."""
    try:
        from dlbox.data.loading import detect_layout
        from dlbox.data.paths import resolve_data_dir

        directory = resolve_data_dir(None)
        if directory.is_dir() and detect_layout(directory) is not None:
            return directory.resolve()
    except Exception:  # noqa: BLE001 - data is optional for the notebook
        return None
    return None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__

