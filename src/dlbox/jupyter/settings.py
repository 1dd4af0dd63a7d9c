"""What a `dlbox notebook` launch needs, as pure data and pure functions (no process, no I/O).

The token never appears on a command line or in a container's config: it is written to a
0600 file that Jupyter reads through JUPYTER_TOKEN_FILE (an environment variable that holds
only the file's path). Everything here is unit-testable without Jupyter or Docker.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dlbox.errors import UsageError
from dlbox.ports import is_ipv6

NOTEBOOK_NAME = "first_pytorch_classifier.ipynb"
DEFAULT_PORT = 8888
DEFAULT_IP = "127.0.0.1"
TOKEN_BYTES = 32  # secrets.token_hex(32): 64 hex characters, 256 bits
TOKEN_FILE_ENV = "JUPYTER_TOKEN_FILE"
TOKEN_ENV = "JUPYTER_TOKEN"  # must NOT reach the server: it would win over the file
# Set in the container of `dlbox notebook --container`: its /data is mounted at the start
NOTEBOOK_CONTAINER_ENV = "DLBOX_NOTEBOOK_CONTAINER"
# Jupyter's own default hide_globs (jupyter_server's ContentsManager), plus the lock file a
# dlbox run keeps in its run folder: nothing a notebook user opens or edits.
HIDDEN_FILE_GLOBS = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~", ".dlbox-run.lock")


@dataclass(frozen=True)
class NotebookSettings:
    """One launch of `dlbox notebook`, as the command line asked for it."""

    notebook_dir: Path
    ip: str = DEFAULT_IP
    port: int = DEFAULT_PORT  # 0: pick a free port
    open_browser: bool = True
    container: bool = False
    image: str | None = None  # the image tag (container mode); None: the dlbox CPU image
    startup_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        validate_ip(self.ip)
        validate_port(self.port)
        validate_timeout(self.startup_timeout_s)


def new_token() -> str:
    """A fresh random token for one launch: 64 hex characters."""
    return secrets.token_hex(TOKEN_BYTES)


def validate_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range",
                         hint="pass --port N with 1 <= N <= 65535, or --port 0 for a free port")
    return port


def validate_timeout(seconds: float) -> float:
    """A startup timeout: a positive, finite number of seconds (nan and inf are refused)."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--startup-timeout {seconds} is not a positive number of seconds",
                         hint="pass a number of seconds, e.g. --startup-timeout 120")
    return seconds


def seconds_text(seconds: float) -> str:
    """A duration for messages: "120 s", "0.5 s", "2.25 s" (never rounded to "0 s")."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    if text == "0":  # under a millisecond
        text = f"{seconds:.1g}"
    return f"{text} s"


def validate_ip(ip: str) -> str:
    """An IP address to listen on (hostnames are refused: they hide which interface listens)."""
    if ip in ("localhost",):
        return ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"--ip {ip!r} is not an IP address",
                         hint="pass --ip 127.0.0.1 (this machine only) or --ip 0.0.0.0 "
                              "(all interfaces)") from None
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # review: accepted, then "cannot listen ...: Invalid argument"
        raise UsageError(f"--ip {ip} is an IPv4 address written as IPv6 (IPv4-mapped), which "
                         "cannot be listened on", hint=f"pass --ip {mapped}")
    return ip


def listens_on_all_interfaces(ip: str) -> bool:
    return ip in ("0.0.0.0", "::", "")


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def browse_host(ip: str) -> str:
    """The host to put in the URL: a wildcard address is reached through this machine's
    loopback address of the same family (Jupyter listens on `::` for IPv6 only)."""
    if ip == "::":
        return "[::1]"
    if listens_on_all_interfaces(ip):
        return "127.0.0.1"
    if is_ipv6(ip):  # an IPv6 literal goes in brackets in a URL
        return f"[{ip}]"
    return ip


def address_text(ip: str, port: int) -> str:
    """"127.0.0.1:8888", "[::]:8888": an address and port as people write them."""
    return f"[{ip}]:{port}" if is_ipv6(ip) else f"{ip}:{port}"


def server_base_url(ip: str, port: int) -> str:
    return f"http://{browse_host(ip)}:{port}"


def url_with_token(base_url: str, token: str, path: str = "lab") -> str:
    """The URL a user opens: base URL, `path`, and ?token=..."""
    return f"{base_url}/{quote(path.lstrip('/'))}?token={token}"


def server_url(ip: str, port: int, token: str, path: str = "lab") -> str:
    return url_with_token(server_base_url(ip, port), token, path)


def all_interfaces_warning(ip: str, port: int) -> str:
    return (f"warning: Jupyter listens on all interfaces ({address_text(ip, port)}): anyone "
            "who can reach this machine and learns the token can run code as you. Use --ip "
            "127.0.0.1 (the default) and an SSH tunnel unless you really need this.")


def lab_config(notebook_root: str, ip: str, port: int, allow_root: bool) -> dict[str, object]:
    """Jupyter config (JSON form) for the launch; holds no secret, so it may go anywhere."""
    return {
        "ServerApp": {
            "ip": ip,
            "port": port,
            "port_retries": 0,  # a busy port is an error, never a silent other port
            # a user's base_url moved the API dlbox polls (404s until the timeout) and the
            # address it prints
            "base_url": "/",
            "open_browser": False,  # dlbox opens it once the server answers
            "root_dir": notebook_root,
            "allow_root": allow_root,
            # Jupyter refuses (403) a request whose Host is not a loopback name unless this
            # is on: one of this machine's own network addresses needs it as a wildcard does.
            "allow_remote_access": not is_loopback(ip),
        },
        # The file browser does not list these (.dlbox-run.lock in a run folder, say), even
        # for a user whose own config shows hidden files.
        "ContentsManager": {"hide_globs": list(HIDDEN_FILE_GLOBS)},
        "LabApp": {
            # No calls to the internet from the UI: news feed and update checks are off.
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        },
    }


def lab_command(python: str, config_file: str) -> list[str]:
    """argv that starts JupyterLab with `config_file`; no token, no secret in it."""
    return [python, "-m", "jupyterlab", f"--config={config_file}", "--no-browser"]
