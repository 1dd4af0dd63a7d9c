"""Talk to a starting Jupyter server over HTTP: is it up, does it want the token.

Plain http.client: no redirects followed (a redirect to /login is an answer we check for).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from dlbox.errors import DlboxError
from dlbox.jupyter.settings import seconds_text

TIMEOUT_HINT = "the machine may be busy: try again with --startup-timeout 300"
REFUSED_HINT = ("a Jupyter config of yours (in ~/.jupyter or $JUPYTER_CONFIG_DIR) may set "
                "the token, allow_remote_access or local_hostnames; or try --ip 127.0.0.1")


class StartupTimeout(DlboxError):
    """The server did not answer in time. `log_tail`: the end of its log, which the server
    reads before it is stopped (its log goes with it), so that the user can still see it."""

    log_tail: str = ""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    location: str | None  # the Location header of a redirect
    body: bytes


def http_get(url: str, token: str | None = None, timeout_s: float = 5.0) -> HttpAnswer:
    """GET `url` once; the token (when given) goes in the Authorization header, not the URL."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    connection = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout_s)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return HttpAnswer(response.status, response.getheader("Location"), body)
    finally:
        connection.close()


STOPPED_HINT = ("read the server log above; `pip install 'dlbox[notebook]'` installs "
                "JupyterLab")


def wait_until_ready(base_url: str, token: str, timeout_s: float,
                     still_starting: Callable[[], str | None],
                     poll_s: float = 0.3, stopped_hint: str = STOPPED_HINT) -> None:
    """Poll {base_url}/api/status with the token until it answers 200.

    `still_starting()` returns None while the server process is alive, or a reason (its exit
    and log tail) once it died: then this raises at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout_s
    last_problem = "no answer yet"
    refused = 0  # answers of 403 in a row: up, but refusing its own token
    while True:
        reason = still_starting()
        if reason is not None:
            raise DlboxError(f"the Jupyter server stopped while starting: {reason}",
                             hint=stopped_hint)
        try:
            answer = http_get(f"{base_url}/api/status", token, timeout_s=5.0)
            if answer.status == 200:
                return
            last_problem = f"HTTP {answer.status}"
            refused = refused + 1 if answer.status == 403 else 0
            if refused >= 3:  # waiting longer cannot help: say so now, not at the timeout
                raise StartupTimeout(
                    f"the Jupyter server at {base_url} refuses requests with its own token "
                    "(HTTP 403)", hint=REFUSED_HINT)
        except (TimeoutError, ConnectionError, OSError, http.client.HTTPException) as error:
            last_problem = type(error).__name__
        if time.monotonic() >= deadline:
            raise StartupTimeout(
                f"the Jupyter server did not answer at {base_url} within "
                f"{seconds_text(timeout_s)} ({last_problem})", hint=TIMEOUT_HINT)
        time.sleep(poll_s)


def check_token_required(base_url: str) -> None:
    """Refuse a server that answers its API without the token (a config file disabled it)."""
    try:
        answer = http_get(f"{base_url}/api/status", token=None)
    except (TimeoutError, ConnectionError, OSError, http.client.HTTPException) as error:
        # it answered a moment ago: it died or hung since
        raise DlboxError(f"the Jupyter server stopped answering at {base_url} right after it "
                         f"started ({type(error).__name__})",
                         hint="start it again; if this repeats, run jupyter lab by hand to "
                              "see why it stops") from None
    if answer.status != 403:
        raise DlboxError(
            f"the Jupyter server answered /api/status without the token (HTTP {answer.status})",
            hint="a Jupyter config file of yours disables token authentication (look for "
                 "a token set to '' in the jupyter_*config.* files of ~/.jupyter or "
                 "$JUPYTER_CONFIG_DIR); remove it")
