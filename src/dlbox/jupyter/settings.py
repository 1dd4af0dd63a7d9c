"""What a `dlbox notebook` launch needs, as pure data and pure functions (no process, no I/O).

The token never appears on a command line or in a container's config: it is written to a
0600 file that Jupyter reads through JUPYTER_TOKEN_FILE (an environment variable that holds
only the file's path). Everything here is unit-testable without Jupyter or Docker.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dlbox.errors import UsageError

NOTEBOOK_NAME = "first_pytorch_classifier.ipynb"
DEFAULT_PORT = 8888
DEFAULT_IP = "127.0.0.1"
TOKEN_BYTES = 32  # secrets.token_hex(32): 64 hex characters, 256 bits
TOKEN_FILE_ENV = "JUPYTER_TOKEN_FILE"
TOKEN_ENV = "JUPYTER_TOKEN"  # must NOT reach the server: it would win over the file


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
        if self.startup_timeout_s <= 0:
            raise UsageError("--startup-timeout must be positive",
                             hint="pass a number of seconds, e.g. --startup-timeout 120")


def new_token() -> str:
    """A fresh random token for one launch: 64 hex characters."""
    return secrets.token_hex(TOKEN_BYTES)


def validate_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range",
                         hint="pass --port N with 1 <= N <= 65535, or --port 0 for a free port")
    return port


def validate_ip(ip: str) -> str:
    """An IP address to listen on (hostnames are refused: they hide which interface listens)."""
    if ip in ("localhost",):
        return ip
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"--ip {ip!r} is not an IP address",
                         hint="pass --ip 127.0.0.1 (this machine only) or --ip 0.0.0.0 "
                              "(all interfaces)") from None
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
    """The host to put in the URL: a wildcard address is reached through 127.0.0.1."""
    if listens_on_all_interfaces(ip):
        return "127.0.0.1"
    if ":" in ip:  # IPv6 literal
        return f"[{ip}]"
    return ip


def server_base_url(ip: str, port: int) -> str:
    return f"http://{browse_host(ip)}:{port}"


def url_with_token(base_url: str, token: str, path: str = "lab") -> str:
    """The URL a user opens: base URL, `path`, and ?token=..."""
    return f"{base_url}/{quote(path.lstrip('/'))}?token={token}"


def server_url(ip: str, port: int, token: str, path: str = "lab") -> str:
    return url_with_token(server_base_url(ip, port), token, path)


def all_interfaces_warning(ip: str, port: int) -> str:
    return (f"warning: Jupyter listens on all interfaces ({ip}:{port}): anyone who can reach "
            "this machine and learns the token can run code as you. Use --ip 127.0.0.1 "
            "(the default) and an SSH tunnel unless you really need this.")


def lab_config(notebook_root: str, ip: str, port: int, allow_root: bool) -> dict[str, object]:
    """Jupyter config (JSON form) for the launch; holds no secret, so it may go anywhere."""
    return {
        "ServerApp": {
            "ip": ip,
            "port": port,
            "port_retries": 0,  # a busy port is an error, never a silent other port
            "open_browser": False,  # dlbox opens it once the server answers
            "root_dir": notebook_root,
            "allow_root": allow_root,
            "allow_remote_access": listens_on_all_interfaces(ip),
        },
        "LabApp": {
            # No calls to the internet from the UI: news feed and update checks are off.
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        },
    }


def lab_command(python: str, config_file: str) -> list[str]:
    """argv that starts JupyterLab with `config_file`; no token, no secret in it."""
    return [python, "-m", "jupyterlab", f"--config={config_file}", "--no-browser"]
