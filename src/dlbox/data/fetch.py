"""`dlbox data fetch`: get cifar-10-python.tar.gz, verify it, extract it safely.

    source   the official URL, a mirror URL (--from URL), or a local file (--from FILE)
    inspect  the archive's format and member names (extract.check_cifar10_archive): a ZIP, an
             image tree or a foreign archive is refused before any checksum is compared
    verify   md5 of the official archive, or the --sha256 given for a mirror or a local copy
    extract  only the expected members, via a temp dir renamed into place (see extract.py);
             an archive that is not the official one has its batches read through there
             (the checks of `dlbox data check`) before it may replace anything
    record   DATA_DIR/cifar-10-batches-py/dlbox-checksums.json: the archive's sha256 and md5
             and each file's sha256, written inside the folder before it moves into place

Network access is the one side effect of `download`, a thin wrapper around urllib: it writes
to `<archive>.part`, resumes that file with an HTTP Range request when a server allows it
(the same URL, and the same file: If-Range, so only from a server that sends an ETag or
Last-Modified), and renames it when complete. A downloaded
archive is deleted once extracted (the record keeps its checksum); a local `--from FILE` is
only read.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlbox.data.extract import (
    BAD_ARCHIVE_HINT,
    EXPECTED_FILES,
    HEAD_CHECK_BYTES,
    REQUIRED_FILES,
    ExtractedFile,
    bad_archive_hint,
    check_cifar10_archive,
    data_dir_error,
    extract_cifar10_archive,
    leftover_message,
    refusal_at_head,
    remove_stale_staging,
    restore_swapped_out,
    staging_folders,
    staging_is_stale,
)
from dlbox.data.layout import BATCHES_DIRNAME, IMAGE_EXTENSIONS, SPLITS, batches_dir
from dlbox.data.paths import check_data_dir_path, data_flag, fetch_from_copy
from dlbox.errors import DataError, UsageError
from dlbox.fileio import exclusive_lock, expand_user, held_elsewhere
from dlbox.text import shell_quote

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
CHECKSUMS_FILE = "dlbox-checksums.json"
URL_SCHEMES = ("http", "https", "ftp")  # what `download` (urllib) fetches; file:// is local
_CHUNK = 1024 * 1024
# A download takes what has arrived, up to this much, each read: a read of _CHUNK waits for
# all of it, which on a slow link left the bar (and a Ctrl-C's .part) behind (review).
_READ_CHUNK = 64 * 1024

def offline_hint(copy: str, url: str = OFFICIAL_URL) -> str:
    """How to fetch without this machine's network: `copy`, the fetch command for a copy of
    `url` (fetch_from_copy, repeating the request's flags)."""
    return (f"on a machine with network access download {redact_url(url)}, copy it here and "
            f"run {copy}")


@dataclass(frozen=True)
class FetchConfig:
    """What `dlbox data fetch` was asked to do."""

    data_dir: Path
    source: str | None = None  # None: the official URL; else a URL or a local archive path
    sha256: str | None = None  # expected sha256 of the archive; None: check the official md5
    force: bool = False  # fetch and replace even if the data is already there
    progress: bool = True  # show rich progress bars on stderr
    # where there are no bars (stderr a log or a pipe): a plain line on stderr at every tenth
    # of a download, and at its end
    progress_lines: bool = False
    timeout_s: float = 60.0


@dataclass(frozen=True)
class ArchiveDigest:
    md5: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FetchResult:
    status: str  # "fetched" or "present"
    batches_dir: Path
    source: str
    archive_sha256: str | None
    warnings: tuple[str, ...] = ()  # one line each: done, but something needs the user's hand


# ---- small pure helpers ---------------------------------------------------------------------

def one_line(value: object) -> str:
    """An exception or reason as a single line (messages must stay one line)."""
    return " ".join(str(value).split()) or type(value).__name__


def normalize_sha256(text: str) -> str:
    """Lower-case 64-hex sha256, or UsageError."""
    value = text.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return value
    hint = ("pass the 64 hexadecimal characters alone: "
            "`--sha256 \"$(sha256sum cifar-10-python.tar.gz | cut -d' ' -f1)\"`")
    if not value:
        why = "is empty"
    elif re.fullmatch(r"[0-9a-f]{64}\s+\*?\S.*", value):
        why = "is a whole `sha256sum` line (the checksum and a file name)"
    elif re.fullmatch(r"[0-9a-f]{32}", value):
        why = "is 32 hexadecimal characters, an md5, not a sha256 (64)"
        hint = ("leave out --sha256 to check the official archive's md5, or " + hint)
    else:
        why = "is not a sha256 (64 hexadecimal characters)"
    raise UsageError(f"--sha256 {text!r} {why}", hint=hint)


def is_url(source: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source) is not None


URL_HINT = ("pass --from a URL like https://host/path/cifar-10-python.tar.gz, "
            "or the path of a local cifar-10-python.tar.gz")


def check_source(source: str) -> None:
    """Raise UsageError for a --from URL that cannot even be requested (a bad IPv6 address, a
    port that is not a number, no host, a scheme urllib does not fetch); plain paths pass."""
    if not is_url(source):
        return
    try:
        parts = urllib.parse.urlsplit(source)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):  # file://a.tar.gz: a relative path
                raise ValueError(f"a file:// URL names no host (file://{parts.netloc} names "
                                 f"{parts.netloc!r}): use file:///absolute/path, or pass "
                                 "the path itself")
            return
        if parts.scheme.lower() not in URL_SCHEMES:
            raise ValueError(f"unsupported scheme {parts.scheme}:// "
                             f"(use {', '.join(s + '://' for s in URL_SCHEMES)} or file://)")
        if not parts.hostname:
            raise ValueError("no host name")
        # urllib refuses these only once it sends the request, as a network error (review)
        # (not at its ends, which urllib strips: a pasted trailing space or a CRLF's \r)
        odd = re.search(r"[\x00-\x20\x7f-\x9f]", source.strip())
        if odd is not None:
            what = "a space" if odd.group() == " " else (
                "whitespace" if odd.group().isspace() else "a control character")
            raise UsageError(f"--from {redact_url(source)!r} is not a valid URL: it "
                             f"contains {what} ({odd.group()!r})",
                             hint="percent-encode it in the URL (a space as %20), as a "
                                  "browser's address bar shows it")
        urllib.request.Request(source)
    except ValueError as error:
        raise UsageError(f"--from {redact_url(source)!r} is not a valid URL: {one_line(error)}",
                         hint=URL_HINT) from None


def redact_url(source: str) -> str:
    """`source` with the password of a `user:password@` part shown as `***`: what messages
    print and what the checksum record (and so a run's manifest) keeps."""
    if not is_url(source):
        return source
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:  # a malformed URL (reported as such): hide what looks like a password
        return re.sub(r"^([^:/]+://[^/?#@:]*):[^/?#]*@", r"\1:***@", source)
    if parts.password is None:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _request(url: str) -> urllib.request.Request:
    """The request for `url`. urllib does not send the `user:password@` of an http(s) URL
    (it would look the whole `user:password@host` up as a host name), so it goes as a Basic
    Authorization header, one that is not carried along a redirect to another server."""
    headers = {"User-Agent": "dlbox"}
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return urllib.request.Request(url, headers=headers)
    host = parts.netloc.rsplit("@", 1)[1]
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)),
                                     headers=headers)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    login = f"Basic {token}"
    request.add_unredirected_header("Authorization", login)
    # _SameServerLogin carries it along a redirect to this same server only (review: a
    # redirect from /latest to the file on the same server lost it, and the 401 blamed the
    # password)
    request.dlbox_login = (_origin(request.full_url), login)  # type: ignore[attr-defined]
    return request


def _origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the scheme's default where none is given)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameServerLogin(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, with the login of the URL (_request) sent again along a redirect
    to the same scheme, host and port, as curl does; never to another server (another host
    or port, or http after https)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        login = getattr(req, "dlbox_login", None)
        if new is not None and login is not None and _origin(new.full_url) == login[0]:
            new.add_unredirected_header("Authorization", login[1])
            new.dlbox_login = login  # type: ignore[attr-defined]
        return new


def _urlopen(request: urllib.request.Request, timeout: float) -> Any:
    """urllib.request.urlopen, with the login kept along a redirect to the same server; the
    proxy variables apply as they do to urlopen."""
    opener = urllib.request.build_opener(_SameServerLogin)
    return opener.open(request, timeout=timeout)


def check_not_empty_source(source: str) -> str:
    """`source` itself, or UsageError when --from was given but is empty or blank (an unset
    shell variable, say): it must not quietly mean the official URL."""
    if not source.strip():
        raise UsageError(f"--from {source!r} is empty",
                         hint="pass --from /path/to/cifar-10-python.tar.gz or a URL, or leave "
                              f"--from out to download {OFFICIAL_URL}")
    return source


def data_root(data_dir: str | Path) -> Path:
    """The folder that holds cifar-10-batches-py (accepts that folder itself too)."""
    return batches_dir(data_dir).parent


def cifar10_present(data_dir: str | Path) -> bool:
    """True when every required batch file is in place (their contents: `dlbox data check`)."""
    directory = batches_dir(data_dir)
    return all((directory / name).is_file() for name in REQUIRED_FILES)


def read_checksums(data_dir: str | Path) -> dict[str, Any] | None:
    """The record `fetch` wrote beside the batches, or None when there is none (or it is bad;
    `inspect_checksums` tells those apart)."""
    path = batches_dir(data_dir) / CHECKSUMS_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _record_shape_problem(record: object) -> str | None:
    """What makes a parsed record unlike the one `fetch` writes, or None."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not an object"
    archive = record.get("archive")
    if not isinstance(archive, dict) or not _is_sha256(archive.get("sha256")):
        return "it has no archive sha256"
    files = record.get("files")
    if not isinstance(files, dict):
        return "it has no per-file checksums"
    for name, info in files.items():
        if name not in EXPECTED_FILES:
            return f"it names {name!r}, not a CIFAR-10 file"
        if not isinstance(info, dict) or not _is_sha256(info.get("sha256")):
            return f"its entry for {name} has no sha256"
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        return f"it has no checksum for {', '.join(missing)}"
    return None


def inspect_checksums(data_dir: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a sound record; (None, None) when there is none; (None, problem)
    when the file is there but damaged or not shaped like the one `fetch` writes: a record
    that cannot be trusted must not pass as "nothing recorded", or a damaged record would
    silently turn off the per-file check."""
    path = batches_dir(data_dir) / CHECKSUMS_FILE
    if not path.exists() and not path.is_symlink():
        return None, None
    damaged = f"{path} is damaged"
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except OSError as error:
        return None, f"cannot read {path}: {error.strerror or one_line(error)}"
    except UnicodeDecodeError:
        return None, f"{damaged}: not UTF-8 text"
    except ValueError as error:
        return None, f"{damaged}: not valid JSON ({one_line(error)})"
    except RecursionError:
        return None, f"{damaged}: nested too deeply"
    problem = _record_shape_problem(record)
    if problem is not None:
        return None, f"{damaged}: {problem}"
    return record, None


def _official_in_place(data_dir: str | Path) -> bool:
    """Whether the record beside the batches says they came from the official archive (its
    md5 matched); False for a copy fetched with --sha256, or no record."""
    archive = (read_checksums(data_dir) or {}).get("archive")
    return isinstance(archive, dict) and archive.get("official_md5_match") is True


def data_checksum(data_dir: str | Path) -> str | None:
    """The sha256 of the archive the CIFAR-10 data in `data_dir` came from, if recorded."""
    record = read_checksums(data_dir)
    if not record:
        return None
    archive = record.get("archive")
    value = archive.get("sha256") if isinstance(archive, dict) else None
    return value if isinstance(value, str) and _is_sha256(value) else None


def digest_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> ArchiveDigest:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return ArchiveDigest(md5.hexdigest(), sha256.hexdigest(), size)


def check_digest(digest: ArchiveDigest, expected_sha256: str | None, label: str, *,
                 local_file: bool = False) -> None:
    """Raise DataError unless the digest matches --sha256 (if given) or the official md5.

    local_file: the archive is the user's own file (`--from FILE`), whose sha256 the hint may
    print for `--sha256`. A download's own sha256 is never offered: a tampered or broken
    download would then pass its own check; the hint says to take the mirror's published one.
    """
    if expected_sha256 is not None:
        if digest.sha256 != expected_sha256:
            # A download's own digest is left out: pasted back as --sha256 it would let a
            # tampered or broken download through.
            found = f"sha256 is {digest.sha256}" if local_file else "its sha256 differs"
            raise DataError(
                f"checksum mismatch for {label}: {found}, expected {expected_sha256}",
                hint="the file is damaged or not the archive you meant; download it again, "
                     "or pass the sha256 its source publishes with --sha256 HEX")
        return
    if digest.md5 != OFFICIAL_MD5:
        if local_file:
            hint = ("for a mirror or a rebuilt copy that is not byte-identical, pass its own "
                    f"checksum: --sha256 HEX (this file's sha256 is {digest.sha256}); "
                    "otherwise download it again")
        else:
            hint = ("the download is damaged or not the official archive (it was deleted); "
                    "download it again, or for a mirror pass the sha256 the mirror itself "
                    "publishes (never one computed from this download) with --sha256 HEX")
        raise DataError(
            f"checksum mismatch for {label}: md5 is {digest.md5}, expected the official "
            f"{OFFICIAL_MD5}",
            hint=hint)


# ---- progress (rich, on stderr) -------------------------------------------------------------

class _ProgressLines:
    """Progress as plain lines on stderr, for a log or a pipe (CI, `| tee`, `docker logs`),
    where a bar can't be drawn: one at every tenth of the total (every LINE_EVERY_BYTES when
    the total is not known), and one at the end."""

    LINE_EVERY_BYTES = 16 * 1000 * 1000

    def __init__(self, description: str, total: float | None, completed: float) -> None:
        self._description, self._total, self._done = description, total, completed
        self._step = self._step_now()
        self._shown: float | None = None

    def _step_now(self) -> int:
        if self._total:
            return int(self._done * 10 // self._total)
        return int(self._done // self.LINE_EVERY_BYTES)

    def advance(self, n: int) -> None:
        self._done += n
        if self._step_now() != self._step:
            self._step = self._step_now()
            self.show()

    def show(self) -> None:
        """A line for what is done now (once for the same amount)."""
        if self._shown == self._done:
            return
        self._shown = self._done
        if self._total:
            done = (f"{_amount_of(int(self._done), int(self._total))} "
                    f"({int(self._done * 100 // self._total)} %)")
        else:
            done = _size_text(int(self._done))
        print(f"{self._description} {done}", file=sys.stderr, flush=True)


class _Progress:
    """A thin wrapper so the download and extract code does not care whether bars are shown.
    `lines`: without bars, plain lines instead (see _ProgressLines)."""

    def __init__(self, enabled: bool, unit: str = "bytes", *, lines: bool = False) -> None:
        self._lines = lines and not enabled
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns: list[Any] = [TextColumn("{task.description:<11}"), BarColumn()]
            if unit == "bytes":
                columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
            else:
                columns += [MofNCompleteColumn(), TextColumn(unit)]
            self._progress = Progress(*columns, console=Console(stderr=True), transient=False)

    @contextlib.contextmanager
    def task(self, description: str, total: float | None, completed: float = 0, *,
             exact: bool = False) -> Iterator[Callable[[int], None]]:
        """A bar for the with-block; `advance(n)` moves it on. At the end a bar's total becomes
        what was done (the extract bar without the optional readme.html ends full), unless
        `exact`: a download cut short keeps its real total (review: a full bar showed above
        "stopped at 300000 of 1975431 bytes")."""
        if self._progress is None:
            if not self._lines:
                yield lambda _n: None
                return
            lines = _ProgressLines(description, total, completed)
            yield lines.advance
            lines.show()  # where it ended: the whole, or where a download was cut short
            return
        with self._progress:
            task_id = self._progress.add_task(description, total=total, completed=completed)
            yield lambda n: self._progress.advance(task_id, n)
            if not exact:
                done = self._progress.tasks[-1].completed
                self._progress.update(task_id, total=done, completed=done)


# ---- side effects ---------------------------------------------------------------------------

def local_copy_hint(copy: str) -> str:
    """Fetch a copy got another way with `copy` (as offline_hint does)."""
    return f"or download cifar-10-python.tar.gz another way, copy it here and run {copy}"


def _http_error_hint(code: int, url: str, where: str, sha256: str | None,
                     answered: str | None = None) -> str:
    """The fix for an HTTP error status: the server answered, so the network is not the
    problem (offline_hint would send the user to another machine for nothing). The --sha256
    asked for is repeated where the copy is that same file (access refused), not where it is
    another (none at that URL, a server error: re-review). `answered`: the URL that gave the
    status, after redirects."""
    local_copy = local_copy_hint(fetch_from_copy(where))
    if code in (401, 403):
        local_copy = local_copy_hint(fetch_from_copy(where, sha256))
        has_login = "@" in urllib.parse.urlsplit(url).netloc
        moved = answered is not None and _origin(answered) != _origin(url)
        login = (f"the URL's login is not sent to {_hostport(answered or '')}, where the "
                 "server redirected (only to the server the URL names): pass the URL it "
                 f"redirects to, with the login in it: --from {_with_login(answered or '')}"
                 if has_login and moved else
                 "check the user name and password in the URL" if has_login else
                 "if it needs a login, put it in the URL: https://USER:PASSWORD@host/path")
        return f"the server refused access: {login}; " + local_copy
    if code == 404:
        return "check the URL (the server has no file there), or use another mirror; " \
               + local_copy
    return "the server answered with an error: try again later or use another mirror; " \
        + local_copy


def _with_login(url: str) -> str:
    """`url` with USER:PASSWORD in place of any login, shell-quoted: a --from to paste."""
    parts = urllib.parse.urlsplit(url)
    return shell_quote(parts._replace(netloc=f"USER:PASSWORD@{_hostport(url)}").geturl())


def _hostport(url: str) -> str:
    """The host (and port, if given) of `url`, without its login."""
    return urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1]


def _proxy_for(url: str) -> tuple[str, str] | None:
    """(the proxy, the variable that names it) that urllib goes through for `url`, or None:
    its <scheme>_proxy variable (lower case before upper, as urllib reads them), unless
    no_proxy exempts the host."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    host = _hostport(url)
    with contextlib.suppress(Exception):  # a malformed no_proxy: urllib's own call would fail
        if host and urllib.request.proxy_bypass(host):
            return None
    variable = next((name for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
                     if os.environ.get(name) == proxy), f"{scheme}_proxy")
    return proxy, variable


def _with_scheme(proxy: str) -> str:
    return proxy if is_url(proxy) else f"http://{proxy}"


def _network_error(url: str, error: BaseException, timeout_s: float, where: str,
                   sha256: str | None) -> DataError | None:
    """The error for a failure that is not "offline": an untrusted certificate, a proxy that
    is not there or wants a login, a redirect loop, a server that never answered (review:
    each got the offline hint, or "try again later"); None for any other."""
    shown = redact_url(url)
    copy = fetch_from_copy(where, sha256)
    reason: object = error.reason if isinstance(error, urllib.error.URLError) else error
    text = one_line(reason)
    via = _proxy_for(url)
    through = ""
    if via is not None:
        proxy, variable = via
        through = f" through the proxy {redact_url(_with_scheme(proxy))} ({variable})"
    code = error.code if isinstance(error, urllib.error.HTTPError) else None
    if code in (301, 302, 303, 307, 308) and "infinite loop" in str(reason):
        return DataError(
            f"could not download {shown}: the URL redirects in a loop (HTTP {code})",
            hint="open it in a browser and pass --from the direct link to "
                 "cifar-10-python.tar.gz it ends at (a link that needs a browser's login "
                 "or cookies cannot be fetched here); " + local_copy_hint(copy))
    if via is not None and (code == 407 or re.search(r"Tunnel connection failed: 407", text)):
        proxy, variable = via
        parts = urllib.parse.urlsplit(_with_scheme(proxy))
        has_login = "@" in parts.netloc
        wants = "refused its login" if has_login else "wants a login"
        fix = (f"check the user name and password in {variable}" if has_login else
               f"put the proxy's login in {variable}: {variable}="
               f"{parts.scheme}://USER:PASSWORD@{_hostport(_with_scheme(proxy))} "
               "(percent-encode @, : or spaces in them)")
        return DataError(f"could not download {shown}: the proxy "
                         f"{redact_url(_with_scheme(proxy))} ({variable}) {wants} "
                         "(HTTP 407 Proxy Authentication Required)",
                         hint=f"{fix}; " + local_copy_hint(copy))
    if code is not None:
        return None
    if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        why = getattr(reason, "verify_message", None) or "certificate verify failed"
        return DataError(
            f"could not download {shown}{through}: the server's certificate was not trusted "
            f"({one_line(why)})",
            hint="a proxy that intercepts TLS (a company network's) is the usual cause: run "
                 "the same command with SSL_CERT_FILE=/path/to/ca-bundle.pem, a CA bundle "
                 "that holds that proxy's certificate (ask your IT for it); "
                 + local_copy_hint(copy))
    if isinstance(reason, TimeoutError):
        waited = f"{timeout_s:g} s"
        if via is not None:
            what = f"no answer{through} in {waited}"
        else:
            what = f"no answer from {_hostport(url)} in {waited}"
        return DataError(f"could not download {shown}: {what}",
                         hint="the server may be down or overloaded: try again later; or "
                              + offline_hint(copy, url))
    if via is not None and re.search(r"Tunnel connection failed: [45]\d\d", text):
        # the proxy answered: what it could not reach is the server (review: a 502 was told
        # to check the proxy's address)
        return DataError(f"could not download {shown}{through}: the proxy could not reach "
                         f"{_hostport(url)} ({text})",
                         hint="check the URL's host, or ask whoever runs the proxy whether it "
                              "lets this host through; " + offline_hint(copy, url))
    if via is not None and isinstance(reason, OSError | http.client.HTTPException):
        proxy, variable = via
        # both spellings set (many environments do): urllib reads the other once one goes
        both = " ".join(name for name in (variable.lower(), variable.upper())
                        if os.environ.get(name))
        return DataError(f"could not download {shown}{through}: {text}",
                         hint=f"check the proxy {variable} names (its host and port), or, if "
                              f"this network needs none, unset it (`unset {both or variable}`); "
                              + local_copy_hint(copy))
    return None


def _again_hint(part: Path) -> str:
    """What running the same command again does with an interrupted .part: resume it where
    the server named the version of its file (an ETag or Last-Modified), else start over."""
    if _names_a_version(part):
        return "run the same command again to resume; "
    return ("run the same command again (the server names no version of its file, so the "
            "download starts over); ")


def download(url: str, dest: Path, *, timeout_s: float = 60.0, progress: bool = False,
             resume: bool = True, progress_lines: bool = False, where: str | None = None,
             sha256: str | None = None) -> Path:
    """Download `url` to `dest` through `dest.part` (resumed when possible); returns `dest`.
    `progress`: a bar on stderr; else `progress_lines`: plain lines (see _ProgressLines).
    `where` and `sha256`: the flags the hints' fetch command for a copy got another way
    repeats (default: dest's folder as --data; fetch passes the request's flags)."""
    check_source(url)
    where = data_flag(dest.parent) if where is None else where
    copy = fetch_from_copy(where, sha256)
    shown = redact_url(url)
    part = dest.with_name(dest.name + ".part")
    source = _source_record(part)
    if resume and dest.is_file() and _record_from(dest, url) is not None:
        # the download of a fetch killed while it verified or extracted (review: it stayed
        # in the data dir for good): taken as it is, its checksum checked again
        return dest
    # Resumed only from the URL that began it, and only while the server's file is the one
    # it began (If-Range): review found a .part of one mirror completed from another's file.
    # A server that named no version of its file (no ETag, no Last-Modified) could splice
    # two: its .part starts over.
    earlier = _record_from(part, url) if resume and part.exists() else None
    validator = earlier.get("validator") if earlier is not None else None
    start = part.stat().st_size if validator else 0
    try:
        request = _request(url)
        if start:
            request.add_header("Range", f"bytes={start}-")
            request.add_header("If-Range", str(validator))
        response = _urlopen(request, timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # our .part is not a prefix the server knows: restart
            try:
                part.unlink()
            except OSError as unlink_error:
                raise data_dir_error(dest.parent, unlink_error, f"delete {part}") from None
            return download(url, dest, timeout_s=timeout_s, progress=progress, resume=False,
                            progress_lines=progress_lines, where=where, sha256=sha256)
        special = _network_error(url, error, timeout_s, where, sha256)
        if special is not None:
            raise special from None
        raise DataError(f"could not download {shown}: HTTP {error.code} {one_line(error.reason)}",
                        hint=_http_error_hint(error.code, url, where, sha256,
                                              error.geturl())) from None
    except (OSError, http.client.HTTPException, ValueError) as error:  # URLError is an OSError
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        special = _network_error(url, error, timeout_s, where, sha256)
        if special is not None:
            raise special from None
        raise DataError(f"could not download {shown}: {one_line(reason)}",
                        hint=offline_hint(copy, url)) from None
    with response:
        status = getattr(response, "status", 200)
        if start and status != 206:
            start = 0  # the server ignored the Range header, or its file changed: start over
        if not start:
            _write_source_record(source, url, response.headers, dest.parent)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        received = start
        # An archive its first member headers refuse (CIFAR-100, an image tree) is refused as
        # they arrive (review: 161 MB downloaded to be told so). A resumed .part's were seen.
        refused = None
        head_seen = start >= HEAD_CHECK_BYTES
        try:
            read = getattr(response, "read1", response.read)  # what has arrived, if it can
            with open(part, "ab" if start else "wb") as out, \
                    _Progress(progress, lines=progress_lines).task(
                        "downloading", total, completed=start,
                        exact=total is not None) as advance:
                while chunk := read(_READ_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
                    if not head_seen and received >= HEAD_CHECK_BYTES:
                        head_seen = True
                        out.flush()
                        with open(part, "rb") as written:
                            refused = refusal_at_head(written.read(HEAD_CHECK_BYTES), shown)
                        if refused is not None:
                            break
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as error:
            if isinstance(error, OSError) and error.errno is not None and not isinstance(
                    error, (ConnectionError, socket.timeout, TimeoutError)):
                failure = data_dir_error(dest.parent, error, f"write {part.name}")
                if not _names_a_version(part):
                    # It could never be resumed (the server names no version of its file):
                    # deleted, which gives its space back too (review: it stayed for good).
                    deleted = False
                    with contextlib.suppress(OSError):
                        _remove_download(part)
                        deleted = True
                    failure.hint = (f"{failure.hint}; " if failure.hint else "") + (
                        "the partial download was deleted: the next fetch starts over"
                        if deleted else f"delete the partial download {part} (the next "
                        "fetch starts over: the server names no version of its file)")
                raise failure from None
            why = (f"no data from {_hostport(url)} in {timeout_s:g} s"
                   if isinstance(error, TimeoutError) else one_line(error))
            raise DataError(
                f"download of {shown} was interrupted after {received} bytes: {why}",
                hint=_again_hint(part) + offline_hint(copy, url)) from None
    if refused is not None:
        with contextlib.suppress(OSError):
            _remove_download(part)
        refused.message += (f" (seen in its first {HEAD_CHECK_BYTES // 1024} KiB: the rest "
                            "was not downloaded)")
        raise refused
    if total is not None and received != total:
        raise DataError(f"download of {shown} stopped at {received} of {total} bytes",
                        hint=_again_hint(part) + offline_hint(copy, url))
    try:
        os.replace(part, dest)
    except OSError as error:
        raise data_dir_error(dest.parent, error, f"rename {part.name}") from None
    with contextlib.suppress(OSError):  # it goes with the archive until that is deleted
        os.replace(source, _source_record(dest))
    return dest


def _source_record(path: Path) -> Path:
    """Where a download's .part records what it is a part of (see _write_source_record), and,
    once complete, the archive where it came from until it is extracted and deleted."""
    return path.with_name(path.name + ".source")


def _url_key(url: str) -> str:
    """A URL as the .part's record keeps it: hashed, so no password in it reaches the disk."""
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()


def _read_record(path: Path) -> dict[str, Any] | None:
    """The .source record of the download `path` (a .part, or a complete archive), if any."""
    try:
        record = json.loads(_source_record(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none (a .part of an older dlbox), or damaged: start over
        return None
    return record if isinstance(record, dict) else None


def _record_from(path: Path, url: str) -> dict[str, Any] | None:
    """The .source record of the download `path` when it came from `url`; None for another
    URL's, or none."""
    record = _read_record(path)
    return record if record is not None and record.get("url") == _url_key(url) else None


def _remove_download(path: Path) -> None:
    """Delete a download (.part or archive) and its .source record; OSError if it cannot."""
    path.unlink(missing_ok=True)
    _source_record(path).unlink(missing_ok=True)


def _write_source_record(source: Path, url: str, headers: Any, folder: Path) -> None:
    """Record the URL a new .part comes from, and the server's validator of the file (its
    ETag, else Last-Modified), which a resumed request sends as If-Range."""
    etag = headers.get("ETag") or ""
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    try:
        # the Content-Type too: a page served as text/html is named as one (_looks_like_html)
        source.write_text(json.dumps({"url": _url_key(url), "validator": validator,
                                      "content_type": headers.get("Content-Type")}),
                          encoding="utf-8")
    except OSError as error:
        raise data_dir_error(folder, error, f"write {source.name}") from None


def html_hint(data_dir: Path) -> str:
    """The fix for a URL that answered with a web page, into the same data dir."""
    return ("the URL leads to a page (a login, a download or error page), not to the file "
            "itself: open it in a browser, take the direct link to cifar-10-python.tar.gz "
            "and pass that to --from, or download it there and run "
            f"`dlbox data fetch{data_flag(data_dir)} --from /path/to/cifar-10-python.tar.gz`")


_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<?xml", b"<!--")


def _looks_like_html(path: Path, content_type: str | None = None) -> bool:
    """Whether a file is a web page, not an archive: it is no gzip (1f 8b) or tar, and it was
    served as text/html, or its first KB starts like a page (after a byte-order mark or
    white space: a doctype, a tag, an <!-- comment -->) or holds an <html tag further down."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return False
    if (content_type or "").split(";")[0].strip().lower() in ("text/html",
                                                             "application/xhtml+xml"):
        return True
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return text.startswith(_HTML_STARTS) or b"<html" in text


def _local_archive(source: str) -> Path:
    if source.lower().startswith("file://"):
        check_source(source)
        parsed = urllib.parse.urlparse(source)
        source = urllib.request.url2pathname(parsed.path)
    path = expand_user(source)
    if path.is_dir():
        raise DataError(f"archive {path} is a folder, not a .tar.gz file",
                        hint=_folder_source_hint(path))
    if not path.is_file():
        raise DataError(f"archive {path} not found" if not path.exists()
                        else f"archive {path} is not a file",
                        hint="pass --from /path/to/cifar-10-python.tar.gz (a file or a URL)")
    return path


def _folder_source_hint(folder: Path) -> str:
    """What a user who passed a folder to --from most likely meant."""
    if (folder / ARCHIVE_NAME).is_file():
        return f"pass the archive in it: --from {folder / ARCHIVE_NAME}"
    if cifar10_present(folder):
        where = batches_dir(folder)
        return (f"{where} already holds extracted batches: use them with --data "
                f"{where.parent} (no fetch needed)")
    return "pass --from /path/to/cifar-10-python.tar.gz (a file or a URL)"


def _write_record(staging: Path, files: list[ExtractedFile], digest: ArchiveDigest,
                  source: str) -> None:
    from dlbox import __version__

    record = {
        "archive": {"name": ARCHIVE_NAME, "source": source, "sha256": digest.sha256,
                    "md5": digest.md5, "bytes": digest.size,
                    "official_md5_match": digest.md5 == OFFICIAL_MD5},
        "files": {f.name: {"sha256": f.sha256, "bytes": f.size} for f in files},
        "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dlbox_version": __version__,
    }
    # Plain write: the staging folder itself moves into place atomically afterwards.
    (staging / CHECKSUMS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _holds_image_tree(root: Path) -> bool:
    """Whether the data dir `root` holds an image tree (<split>/<class>/<image>) at its top,
    the one `--data root` reads. By names only (dlbox.data.loading needs torch): a split
    folder with a class folder holding an image."""
    for split in SPLITS:
        with contextlib.suppress(OSError):
            for child in (root / split).iterdir():
                if child.is_dir() and not child.name.startswith((".", "__MACOSX")) and any(
                        path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
                        for path in child.iterdir()):
                    return True
    return False


def check_not_an_image_tree(data_dir: str | Path) -> None:
    """Raise UsageError when the data dir holds the user's image tree and no CIFAR-10 yet:
    CIFAR-10 fetched there would be read instead of it, from then on, without a word
    (review). Where the batches are there already (a `--force` to repair them), CIFAR-10 is
    what the dir reads; a tree one folder down is read by `--data` that folder (review:
    refusing those left `dlbox data check`'s own hint, a `fetch --force`, a dead end)."""
    root = data_root(data_dir)
    if (root / BATCHES_DIRNAME).exists() or not _holds_image_tree(root):
        return
    raise UsageError(f"the data dir {root} holds an image tree: CIFAR-10 fetched there would "
                     "be read instead of it",
                     hint="pass --data DIR (or set DLBOX_DATA) to another folder, a new or "
                          f"empty one, for CIFAR-10; `--data {shell_quote(root)}` keeps "
                          "reading the image tree")


NOT_CIFAR_HINT = ("the archive is not CIFAR-10's python version (cifar-10-python.tar.gz); get a "
                  "good copy (leave out --from to download the official one), or repack the "
                  "batches as the official archive holds them")


def check_batch_contents(staging: Path, label: str) -> None:
    """Raise DataError unless the batches extracted into `staging` pass the checks of `dlbox
    data check` (shape, pixel type, labels, class names): an archive that passed its
    --sha256 may still hold something else, which must not replace good data (review).
    Named by file, as the archive holds it, never by the temp folder."""
    from dlbox.data.loading import _check_cifar_batches  # torch: only for a non-official copy

    problems: list[str] = []
    _check_cifar_batches(staging, None, problems, [])
    if problems:
        problem = one_line(problems[0]).replace(f"{staging}{os.sep}", f"{BATCHES_DIRNAME}/")
        raise DataError(f"refusing the archive {label}: {problem}", hint=NOT_CIFAR_HINT)


def fetch_cifar10(config: FetchConfig) -> FetchResult:
    """Make DATA_DIR/cifar-10-batches-py hold verified CIFAR-10 batches (see module docstring)."""
    root = data_root(config.data_dir)
    target = root / BATCHES_DIRNAME
    # None means "not given"; an empty string was given (say, a `$(...)` that printed
    # nothing) and is refused, never read as "check the official md5 / use the official URL".
    expected = normalize_sha256(config.sha256) if config.sha256 is not None else None
    source = OFFICIAL_URL if config.source is None else check_not_empty_source(config.source)
    check_source(source)
    shown = redact_url(source)  # never a password in a message or the record
    check_data_dir_path(config.data_dir)
    restored = restore_swapped_out(root)  # the data a fetch killed mid-swap moved aside
    if restored is not None:
        print(f"note: {restored}", file=sys.stderr)
    if cifar10_present(root) and not config.force:
        _clear_killed_fetch(root)
        present = data_checksum(root)
        # another archive's data is not "nothing to do" (review: scripts/main.sh then trained
        # on it, its --sha256 unheeded); data with no record cannot be told apart, and stays
        if expected is not None and present is not None and present != expected:
            raise UsageError(f"{target} holds CIFAR-10 from another archive (sha256 "
                             f"{present}), not the one --sha256 names ({expected})",
                             hint="pass --force to replace it with that archive's data")
        # nor, without --sha256 (the official archive expected), is a copy's (review: a plain
        # scripts/main.sh after an offline one trained on the JPEG copy without a word)
        if expected is None and present is not None and not _official_in_place(root):
            # --from a mirror or a file: its --force would take that copy again, and fail
            # the official md5 it is then checked against (review)
            hint = (f"pass --sha256 {present} (the checksum it was fetched with) to keep "
                    "using it, or leave out --from and pass --force to replace it with the "
                    "official archive's data" if config.source is not None else
                    "pass --force to replace it with the official archive's data, or "
                    f"--sha256 {present} to keep using it")
            raise UsageError(f"{target} holds CIFAR-10 from another archive (sha256 "
                             f"{present}), not the official one (md5 {OFFICIAL_MD5})",
                             hint=hint)
        return FetchResult("present", target, str(target), present)
    check_not_an_image_tree(root)
    created_root = not root.exists()
    # the hints' commands repeat the request (review: one without its --force and --sha256
    # said "nothing to do" over the damaged data it was to replace)
    where = data_flag(root) + (" --force" if config.force else "")
    downloaded: Path | None = None
    verified = False  # the download matched its checksum: worth keeping if the rest fails
    unread = False  # it could not be read to be checked: that says nothing of the file
    warnings: list[str] = []
    held = contextlib.ExitStack()
    try:
        if is_url(source) and not source.lower().startswith("file://"):
            _make_data_dir(root)
            held.enter_context(_download_lock(root))
            downloaded = download(source, root / ARCHIVE_NAME, timeout_s=config.timeout_s,
                                  progress=config.progress,
                                  progress_lines=config.progress_lines,
                                  where=where, sha256=expected)
            archive = downloaded
        else:
            archive = _local_archive(source)
        label = str(archive) if downloaded is None else shown
        web_page = downloaded is not None and _looks_like_html(
            downloaded, (_read_record(downloaded) or {}).get("content_type"))
        # Format and contents first (member headers only): a ZIP, an image tree or a foreign
        # archive gets the error that says what it is, never a checksum mismatch whose hint
        # offers `--sha256 <this file's sha256>` for a file that could not be extracted
        # anyway. A web page sent for a download is named as one below instead.
        if downloaded is None and _looks_like_html(archive):
            raise DataError(f"archive {archive} is a web page (HTML), not a .tar.gz",
                            hint="it was saved from a page (a login, download or error "
                                 "page), not from the file itself: take the direct link to "
                                 "cifar-10-python.tar.gz and download it again")
        if not web_page:
            check_cifar10_archive(archive, label=label)
        try:
            with _Progress(config.progress).task("verifying",
                                                 archive.stat().st_size) as advance:
                digest = digest_file(archive, advance)
        except OSError as error:
            unread = True
            raise DataError(f"cannot read the archive {archive}: "
                            f"{error.strerror or one_line(error)}",
                            hint="check that the file is readable for you, or download it "
                                 "again") from None
        # A bad download is deleted below (it must not be resumed).
        try:
            check_digest(digest, expected, label, local_file=downloaded is None)
            verified = True
        except DataError as error:
            if web_page:
                raise DataError(f"{error.message}: the server sent a web page (HTML), not "
                                "the archive", hint=html_hint(root)) from None
            raise
        if downloaded is None:  # a local archive: two fetches would still swap in turn
            _make_data_dir(root)
            held.enter_context(_download_lock(root))

        def remove_the_download() -> None:  # with the data in place, even if stopped just then
            if downloaded is None:
                return
            try:
                _remove_download(downloaded)  # the record keeps its checksum
            except OSError as error:
                warnings.append(f"could not delete the downloaded {downloaded} "
                                f"({error.strerror or one_line(error)}); the data is in place, "
                                "delete the archive by hand")

        def finalize(staging: Path, files: list[ExtractedFile]) -> None:
            nonlocal verified
            # The official archive's contents are known (its md5 matched): only another copy
            # is read through, before it may replace the data in place.
            if digest.md5 != OFFICIAL_MD5:
                if config.progress or config.progress_lines:  # seconds, for a full-size copy
                    print("checking the batches (not the official archive: its contents are "
                          "read through)", file=sys.stderr)
                try:
                    check_batch_contents(staging, label)
                except DataError:
                    verified = False  # not worth keeping: the download goes too
                    raise
            _write_record(staging, files, digest, shown)

        with _Progress(config.progress, unit="files").task(
                "extracting", len(EXPECTED_FILES)) as advance:
            extract_cifar10_archive(
                archive, root, replace=True, on_file=lambda _name: advance(1),
                finalize=finalize,
                on_leftover=lambda path, error: warnings.append(leftover_message(path, error)),
                label=label, on_placed=remove_the_download)
        if downloaded is None:
            _remove_stale_part(root, archive)
    except BaseException as error:
        if isinstance(error, DataError) and error.hint and where:  # its data dir, not the default
            error.hint = error.hint.replace(BAD_ARCHIVE_HINT, bad_archive_hint(where))
        if downloaded is not None and verified and isinstance(error, DataError):
            error.hint = (f"{error.hint}; " if error.hint else "") + (
                f"the download is kept ({downloaded}): the same command extracts it without "
                "downloading it again")
        # A download found bad (not an archive, a checksum mismatch, batches that are not
        # CIFAR-10) is never used again: deleted, so the next run downloads through a fresh
        # .part. Any other is kept with its .source record: one that verified and then failed
        # to extract (a full disk, Ctrl-C), one that could not be read to be checked (an I/O
        # error), and one stopped before its check was done (Ctrl-C,
        # SIGTERM, SIGHUP: review, 163 MB deleted unchecked). The next fetch from the same URL
        # checks it again and extracts it without downloading it again (review: a full disk
        # deleted it, and each retry downloaded 163 MB again). Deleted before the lock goes.
        if downloaded is not None and not verified and not unread \
                and isinstance(error, DataError):
            with contextlib.suppress(OSError):
                _remove_download(downloaded)
        held.close()
        if created_root:
            _remove_if_empty(root)
        raise
    held.close()
    return FetchResult("fetched", target, shown, digest.sha256, tuple(warnings))


def kept_downloads(data_dir: str | Path) -> list[str]:
    """For `dlbox data check`: a complete download that a fetch did not extract (verified, or
    stopped before its check was done: the next fetch checks it again), and the .part
    of an interrupted one, each with what the next fetch does with it (review: a kept 163 MB
    download went unmentioned)."""
    root = data_root(data_dir)
    # with the data in place a bare fetch does nothing: only --force fetches (review)
    force = " --force" if cifar10_present(root) else ""
    fetch = f"`dlbox data fetch{data_flag(root)}{force}`"
    notes = []
    part = root / (ARCHIVE_NAME + ".part")
    # A fetch holding the data dir's lock (_download_lock) is writing these files right now:
    # not interrupted, and not to be deleted (review).
    busy = held_elsewhere(root)
    for path, what, then in (
            (root / ARCHIVE_NAME, "a complete download a fetch did not extract",
             "checks it and uses it without downloading it again"),
            (part, "an interrupted download", "resumes it" if _names_a_version(part) else
             "starts it over (the server named no version of its file)")):
        with contextlib.suppress(OSError):
            if not (path.is_file() and _source_record(path).is_file()):
                continue
            size = _size_text(path.stat().st_size)
            notes.append(f"{fetching_now(root)}: {path} ({size}) is its download so far; "
                         "leave it until that fetch ends" if busy else
                         f"{path} is {what} ({size}): the next {fetch} from the same URL "
                         f"{then}; delete it to get the space back")
    return notes


def fetching_now(root: Path) -> str:
    """The start of `data check`'s notes about files of a fetch that holds the data dir."""
    return f"another `dlbox data fetch` is fetching into {root} right now"


def _clear_killed_fetch(root: Path) -> None:
    """With the data in place, delete what a fetch killed outright (SIGKILL, power loss) left
    in the data dir: its temp folder, or the old copy a --force fetch swapped out (review: a
    plain fetch said "nothing to do" and left them for good). Only under the data dir's lock:
    while another fetch holds it, they are that fetch's, and left alone."""
    with contextlib.suppress(DataError), _download_lock(root):
        remove_stale_staging(root)


def killed_fetch_folders(data_dir: str | Path) -> list[str]:
    """For `dlbox data check`: the temp folders (DATA_DIR/.cifar-10-batches-py.*.tmp) of
    fetches killed outright, each with its size and what the next fetch does with it."""
    root = data_root(data_dir)
    busy = held_elsewhere(root)
    notes = []
    for folder in staging_folders(root):
        with contextlib.suppress(OSError):
            size = _size_text(sum(path.stat().st_size for path in folder.iterdir()
                                  if path.is_file()))
            if busy:
                notes.append(f"{fetching_now(root)}: {folder} ({size}) is its temp folder; "
                             "leave it until that fetch ends")
            elif staging_is_stale(folder):
                notes.append(f"{folder} ({size}) is the temp folder of a `dlbox data fetch` "
                             f"that was killed: the next `dlbox data fetch{data_flag(root)}` "
                             f"deletes it (or `rm -rf {shell_quote(folder)}`)")
            else:
                notes.append(f"{folder} ({size}) is the temp folder of a `dlbox data fetch` "
                             "on another machine sharing this data dir (or one killed there): "
                             "the next fetch deletes it once it is an hour old; if no fetch "
                             f"runs there, `rm -rf {shell_quote(folder)}`")
    return notes


def _names_a_version(part: Path) -> bool:
    """Whether the .source record of `part` holds the server's ETag or Last-Modified."""
    return bool((_read_record(part) or {}).get("validator"))


def _size_text(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} kB"


def _amount_of(done: int, total: int) -> str:
    """"17 MB of 170 MB": both in the total's unit, with a decimal where the total is under
    10 MB (review: a 1.3 MB mirror showed "161 kB of 1 MB", then "1 MB of 1 MB (81 %)")."""
    if total < 1e6:  # all of a file under 500 bytes is 1 kB of 1 kB, not 0 (re-review)
        whole = max(1, round(total / 1e3))
        return f"{whole if done >= total else min(round(done / 1e3), whole)} kB of {whole} kB"
    digits = 1 if total < 10e6 else 0
    return f"{done / 1e6:.{digits}f} MB of {total / 1e6:.{digits}f} MB"


def _remove_stale_part(root: Path, archive: Path) -> None:
    """After a fetch from a local file: the .part of an earlier, interrupted download (up to
    163 MB) has nothing left to resume into. Called with the data dir's lock held (no other
    fetch may be writing that very file); left alone when it is the file just read."""
    part = root / (ARCHIVE_NAME + ".part")
    with contextlib.suppress(OSError):
        if part.exists() and not part.samefile(archive):
            _remove_download(part)
    downloaded = root / ARCHIVE_NAME  # a killed fetch's download (its record says so)
    with contextlib.suppress(OSError):
        if _source_record(downloaded).exists() and downloaded.exists() \
                and not downloaded.samefile(archive):
            _remove_download(downloaded)


def _make_data_dir(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data dir {root} "
                        f"({error.strerror or one_line(error)})",
                        hint="pass --data DIR (or set DLBOX_DATA) to a writable folder") from None


@contextlib.contextmanager
def _download_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data dir while downloading into it and extracting: two
    fetches at once (two terminals, parallel jobs) would otherwise write the same .part,
    delete each other's archive, or swap their folders into place at the same time. The
    second one is told at once. Best effort: where folders can't be locked (no fcntl, some
    network filesystems) it goes on unlocked. The folder itself is locked, so the lock
    leaves no file in the data dir."""
    busy = DataError(f"another `dlbox data fetch` is fetching into {root}",
                     hint="wait for it to finish, then run the command again (it will find "
                          "the data in place); or pass --data DIR (or set DLBOX_DATA) to "
                          "another folder")
    with exclusive_lock(root, busy, best_effort=True):
        yield


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
