"""Reading pip's and the build's output: which package failed to build from source and why,
the Debian package for a tool the build lacked, a proxy pip could not get through.

Pure functions of the text pip (a resolve's, or an image build step's) printed; the engine
(`engine.build_error`) and the resolve (`pins`) turn what they find into errors and hints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dlbox.container.project import requirement_name
from dlbox.text import in_words, redact_url_credentials

# What a failed pip install prints when the base image lacks a tool, and the Debian
# packages that bring it: the hint of a failed build names them for the project's apt.txt.
_MISSING_TOOLS = (
    # first: with the headers missing, the compiler ran and "failed" too
    (("python.h: no such file",), "Python's headers", "python3-dev"),
    (("cannot find command 'git'", "git: not found", "no such file or directory: 'git'"),
     "git", "git"),
    (("command 'gcc' failed", "gcc: not found", "unable to execute 'gcc'", "gcc: no such file",
      "linux-gnu-gcc' failed", "no such file or directory: 'gcc'", "c compiler cannot create",
      "no such file or directory: 'x86_64-linux-gnu-gcc'",
      "no such file or directory: 'aarch64-linux-gnu-gcc'",
      "error: command 'cc' failed", "command 'c++' failed", "g++: not found",
      "no acceptable c compiler found"),  # autoconf's configure (pycrypto: review)
     "a C/C++ compiler", "build-essential"),
    # mysqlclient 2.2+ asks pkg-config for the library: before pkg-config's own entry
    (("can not find valid pkg-config name", "mysqlclient_cflags"), "MySQL's client library",
     "pkg-config default-libmysqlclient-dev build-essential python3-dev"),
    (("pkg-config: not found", "could not find pkg-config", "pkg-config is required"),
     "pkg-config", "pkg-config"),
    (("can't find rust compiler", "cargo: not found", "rustc: not found"),
     "a Rust compiler", "cargo"),
    # a C library's config tool: the package that needs it compiles against it next
    (("pg_config executable not found", "pg_config: not found", "pg_config is required"),
     "PostgreSQL's pg_config", "libpq-dev build-essential python3-dev"),
    (("mysql_config not found", "mysql_config: not found"), "MySQL's mysql_config",
     "default-libmysqlclient-dev build-essential python3-dev"),
    (("curl-config",), "curl's curl-config", "libcurl4-openssl-dev build-essential python3-dev"),
    (("xslt-config", "libxml2 and libxslt development packages"), "libxml2 and libxslt",
     "libxml2-dev libxslt1-dev build-essential python3-dev"),
    (("krb5-config",), "Kerberos's krb5-config", "libkrb5-dev build-essential python3-dev"),
)


def missing_tool_hint(log: Sequence[str]) -> str | None:
    """A hint naming the Debian package for a tool the build's output says is missing."""
    text = "\n".join(log).lower()
    for needles, what, packages in _MISSING_TOOLS:
        if any(needle in text for needle in needles):
            named = packages.split()
            them = f"package{'' if len(named) == 1 else 's'} {in_words(named)}"
            return (f"the base image lacks {what}: add the Debian {them} to the project's "
                    "apt.txt and build again")
    return None


_BUILD_FAILED = ("subprocess-exited-with-error", "metadata-generation-failed")


# A failed build's lines that say why (review: sklearn's "is deprecated, use scikit-learn"
# and mysqlclient's "Can not find valid pkg-config name" were passed over) ...
_BUILD_REASON = re.compile(r"error|exception|not found|cannot|can not|could not|required|"
                           r"deprecated|missing|please", re.I)


# ... and those that never do: setuptools' chatter and banners, warnings, traceback lines.
_BUILD_NOISE = re.compile(r"^(running |creating |writing |copying |reading |adding |!!|\*{5}|"
                          r"Traceback|File \"|raise |\^+$|\[end of output\])|Warning\b")


# git's clone of a VCS requirement failed (no route to the host, a private repository):
# pip names the command, with the URL and its host.
_CLONE_FAILED = re.compile(r"git clone .*?((?:https?|ssh|git)://(?:[^@/\s]+@)?([^/:\s]+)\S*)"
                           r" /\S+ did not run successfully")


_SUBPROCESS_OUTPUT = re.compile(r"\[\d+ lines of output\]\n(.*?)\[end of output\]", re.S)


def source_build_failure(stdout: str, stderr: str = "") -> tuple[str, str] | None:
    """(message, hint) when pip failed because a package it had to build from source (an
    sdist: no wheel fits the image) failed to build: the package, the lines of its build's
    output that say why, and the fix. `stdout` and `stderr` are pip's (a resolve's), or a
    build step's output as one. pip's last lines, shown before, held neither the package nor
    the reason (review: psycopg2 without pg_config; pycrypto without a compiler in the deps
    stage)."""
    said_all = stdout + "\n" + stderr
    first = _build_failed_at(said_all)
    if first < 0:
        return None
    package = _failed_package(said_all, first)
    clone = _CLONE_FAILED.search(said_all)
    if clone is not None:  # a VCS requirement: git could not fetch it, nothing was built
        url, host = redact_url_credentials(clone.group(1)), clone.group(2)
        name = requirement_name(package) or package
        fatal = [redact_url_credentials(line.strip()) for line in said_all.splitlines()
                 if line.strip().startswith(("fatal:", "remote:"))][:2]
        return (f"pip could not clone {name} from {url} inside the image:"
                + "".join(f"\n  {line}" for line in fatal),
                f"the image build needs network access to {host} (and credentials for a "
                f"private repository are not passed in); or build a wheel of {name} on the "
                "host, put it in a folder, pass --wheelhouse DIR and require "
                f"{name} by name")
    said, lines = build_reason(said_all)
    shown = "".join(f"\n  {line}" for line in said)
    return (f"pip could not build {package} from source inside the image (no wheel of it fits "
            f"the image, and its build failed):{shown}",
            missing_tool_hint(lines)
            or "where its build needs a system library or tool, add its Debian package to the "
               "project's apt.txt; else follow the reason above, or pin a version (or a "
               "package) that has a wheel for this platform")


def _build_failed_at(output: str) -> int:
    """Where pip's `output` starts saying that a build it ran failed; -1 where it does not."""
    return min((output.find(marker) for marker in _BUILD_FAILED if marker in output),
               default=-1)


def build_reason(output: str) -> tuple[list[str], list[str]]:
    """(the lines that say why, every line the build printed) for pip's `output` of a failed
    install: the lines of the failed build's output that say why, else pip's own lines on
    what failed (× ..., ERROR: ...), never nothing where pip said something."""
    first = max(_build_failed_at(output), 0)
    block = _SUBPROCESS_OUTPUT.search(output, first)
    printed = re.sub(r"^\s*!!\s*$.*?^\s*!!\s*$", "", block.group(1) if block else "",
                     flags=re.S | re.M)  # setuptools' deprecation banners, between !! lines
    lines = [line.strip() for line in printed.splitlines()
             if line.strip() and not _BUILD_NOISE.search(line.strip())]
    said = [line for line in lines if _BUILD_REASON.search(line)][:4] or lines[-4:]
    if not said:  # no output block: pip's own lines on what failed
        said = [line.strip(" \u2502\u2570\u2500>") for line in output[first:].splitlines()
                if re.match(r"\s*(\u00d7|fatal:|ERROR:)", line)][:2]
    return said, lines


# pip names the package whose build failed in its error block ("× Running setup.py install
# for pycrypto did not run successfully", "╰─> pycrypto", "Failed building wheel for x") ...
_FAILED_NAMED = re.compile(r"(?:Failed building wheel for|\u00d7 (?:Running setup\.py install|"
                           r"Building wheel) for) ([A-Za-z0-9][\w.-]*)"
                           r"|^\s*\u2570\u2500> ([A-Za-z0-9][\w.-]*)\s*$", re.M)


# ... else it is the one pip was getting when it failed: `Collecting NAME` from an index or
# a URL, `Processing PATH` for a file (a --find-links / wheelhouse sdist, a local folder).
_GETTING = re.compile(r"^\s*(?:Collecting (\S+)|Processing (\S+))", re.M)


_ARCHIVE = re.compile(r"(.+)-(\d[^-]*)\.(?:tar\.gz|tar\.bz2|tgz|zip)$")


def _failed_package(output: str, first: int) -> str:
    """The package whose build failed, from pip's `output` whose error block starts at
    `first`: named by pip's error block, else the last one it got before that block."""
    named = _FAILED_NAMED.search(output, first)
    if named is not None:
        return named.group(1) or named.group(2)
    getting = list(_GETTING.finditer(output, 0, first))
    if not getting:
        return "a package"
    last = getting[-1]
    if last.group(1) is not None:
        return last.group(1).rstrip("@")  # `mylib@ git+...`
    path = last.group(2).rstrip("/")
    archive = _ARCHIVE.match(path.rsplit("/", 1)[-1])
    return f"{archive.group(1)}=={archive.group(2)}" if archive else path


# What pip says when the proxy in HTTP(S)_PROXY did not let it through (refused, down, or
# answered the CONNECT with an error).
_PROXY_FAILURES = ("proxyerror", "cannot connect to proxy", "tunnel connection failed")


def proxy_failure_hint(log: Sequence[str]) -> str | None:
    """A hint for a build whose pip could not get through the HTTP(S) proxy (review: the hint
    asked whether the machine was offline, under pip's ProxyError lines)."""
    text = "\n".join(log).lower()
    if not any(needle in text for needle in _PROXY_FAILURES):
        return None
    return ("pip could not get through the proxy that HTTP_PROXY / HTTPS_PROXY name (the "
            "build and its resolve use dlbox's): check that it runs and lets the package "
            "index through, set NO_PROXY for hosts to reach directly, or pass --wheelhouse "
            "DIR holding the wheels")
