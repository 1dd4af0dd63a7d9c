"""Whether a TCP port on an address of this machine is free: bound (without listening) the
way Jupyter's server (tornado) and Docker's port proxy bind theirs, so `dlbox notebook` and
`dlbox image run -p` judge a port as the server that will listen on it would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any


def is_ipv6(ip: str) -> bool:
    return ":" in ip


def listen_addresses(ip: str) -> list[str]:
    """The addresses Jupyter's server listens on for `ip`: localhost is every address the
    name has here (tornado binds each: 127.0.0.1, and ::1 where /etc/hosts gives it)."""
    if ip == "":
        return ["127.0.0.1"]
    if ip != "localhost":
        return [ip]
    try:
        found = socket.getaddrinfo("localhost", None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        return ["127.0.0.1"]
    return list(dict.fromkeys(str(info[4][0]) for info in found)) or ["127.0.0.1"]


def bind_probe(ip: str, port: int) -> int:
    """Bind (without listening) sockets to ip:port the way Jupyter's server (tornado) and
    Docker's port proxy bind theirs; the port bound (a free one for port 0, the same on each
    of localhost's addresses). OSError if it cannot be bound: the port is taken, or `ip` is
    not an address of this machine.

    SO_REUSEADDR, as they set it: a port whose old connections linger in TIME_WAIT is free for
    them, so it must be for this check too. IPv6 sockets are IPv6-only, as tornado's are."""
    with contextlib.ExitStack() as held:
        for host in listen_addresses(ip):
            try:
                port = _bind(held, host, port)
            except OSError as error:
                if ip == "localhost" and host == "::1" and error.errno in (
                        errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue  # IPv6 switched off: tornado leaves ::1 out too
                raise
        return port


def _bind(held: contextlib.ExitStack, host: str, port: int) -> int:
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    probe = held.enter_context(socket.socket(family, socket.SOCK_STREAM))
    if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share a port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    address: tuple[Any, ...] = (host, port)
    if family == socket.AF_INET6 and "%" in host:  # fe80::1%eth0: bind needs its scope id
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0,
                                     socket.AI_NUMERICHOST | socket.AI_PASSIVE)[0][4]
    probe.bind(address)
    return int(probe.getsockname()[1])  # port 0: the free one it got


def port_is_free(ip: str, port: int) -> bool:
    try:
        bind_probe(ip, port)
    except OSError:
        return False
    return True
