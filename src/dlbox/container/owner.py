"""Which dlbox started a container: a label with its host, pid and process start time.

A dlbox killed outright (SIGKILL) cannot stop or remove its container; the label lets the
next dlbox on the same host recognise such a container (its owner is gone) and tidy it up.
A container of another host (a shared engine) is never judged.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlbox.errors import DlboxError

OWNER_LABEL = "dlbox.owner"


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; [] if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    """The kernel's start time of process `pid` (tells a reused pid apart); "" if unknown."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def owner_id(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def owner_gone(owner: str) -> bool:
    """Whether the dlbox named by an owner label has ended. A container of another machine
    (a shared engine), or one whose label cannot be read, is never judged gone."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    fields = _stat_fields(pid)
    if fields[:1] == ["Z"]:  # killed, not yet reaped by its parent: ended all the same
        return True
    return bool(start) and _process_start(pid) not in ("", start)


def remove_orphaned(client: Any, label: str, statuses: Sequence[str] = (),
                    stop_timeout: float | None = None) -> list[str]:
    """Remove the containers carrying `label` (in `statuses`, if given) whose dlbox is gone;
    stop each first when `stop_timeout` is given. Their names; tidying up never fails."""
    from dlbox.container import engine

    try:
        containers = engine.list_containers(client, label, statuses)
    except DlboxError:
        return []
    removed = []
    for container in containers:
        owner = (container.labels or {}).get(OWNER_LABEL)
        if owner and owner_gone(owner):
            if stop_timeout is not None:
                engine.stop_container(container, stop_timeout)
            engine.remove_container(container)
            removed.append(container.name)
    return removed
