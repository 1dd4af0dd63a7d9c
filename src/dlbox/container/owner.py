"""Which dlbox started a container: a label with its host, pid and process start time.

A dlbox killed outright (SIGKILL) cannot stop or remove its container; the label lets the
next dlbox on the same host recognise such a container (its owner is gone) and tidy it up.
A container of another host (a shared engine) is never judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dlbox.errors import DlboxError
from dlbox.processes import owner_gone, owner_id

__all__ = ["OWNER_LABEL", "owner_gone", "owner_id", "remove_orphaned"]

OWNER_LABEL = "dlbox.owner"


def remove_orphaned(client: Any, label: str, statuses: Sequence[str] = (),
                    stop_timeout: float | None = None,
                    after: Callable[[dict[str, str]], None] | None = None) -> list[str]:
    """Remove the containers carrying `label` (in `statuses`, if given) whose dlbox is gone;
    stop each first when `stop_timeout` is given, and call `after` with each one's labels
    once it is removed. Their names; tidying up never fails."""
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
            if after is not None:
                after(container.labels or {})
    return removed
