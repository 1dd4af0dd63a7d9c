"""Review 13 of `dlbox data fetch` over the network: a login kept along a redirect to the
same server, TLS and proxy failures named as such (not "offline"), a redirect loop, a server
that never answers, and the hint for a mirror's data re-fetched without its --sha256."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ArchiveServer, LoopbackServer, QuietHandler, closed_port_url

from dlbox.data import fetch as fetch_module
from dlbox.data.fetch import ARCHIVE_NAME, FetchConfig, fetch_cifar10
from dlbox.data.synthetic import write_fake_cifar10_archive
from dlbox.errors import DataError, UsageError

PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar10_archive(tmp_path_factory.mktemp("arc") / ARCHIVE_NAME,
                                      n_train=60, n_test=20, seed=13)


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' loopback servers are reached directly, whatever proxy the machine sets."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(data_dir: Path, timeout_s: float = 10, **kwargs: object) -> object:
    return fetch_cifar10(FetchConfig(data_dir=data_dir, progress=False, timeout_s=timeout_s,
                                     **kwargs))  # type: ignore[arg-type]


class RedirectingAuthServer(LoopbackServer):
    """/latest redirects (302) to `location`; /cifar-10-python.tar.gz serves the payload
    only with Basic auth for `login`. `seen`: (path, Authorization) of each request."""

    def __init__(self, payload: bytes, login: str) -> None:
        expected = "Basic " + base64.b64encode(login.encode()).decode()
        self.seen: list[tuple[str, str | None]] = []
        self.location = "/" + ARCHIVE_NAME
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.seen.append((self.path, self.headers.get("Authorization")))
                if self.path == "/latest":
                    self.reply(302, Location=outer.location)
                elif self.headers.get("Authorization") != expected:
                    self.reply(401)
                else:
                    self.reply(200, payload)

        self.serve(Handler)


@pytest.fixture()
def auth_server(archive: Path) -> Iterator[RedirectingAuthServer]:
    running = RedirectingAuthServer(archive.read_bytes(), "bob:s3cret")
    yield running
    running.close()


def test_a_login_is_kept_along_a_redirect_to_the_same_server(
        tmp_path: Path, archive: Path, auth_server: RedirectingAuthServer) -> None:
    """Review: http://bob:s3cret@host/latest redirecting to host/file lost its login (urllib
    drops an unredirected header on every redirect), and the 401 blamed the password."""
    url = f"http://bob:s3cret@{auth_server.hostport}/latest"
    assert fetch(tmp_path / "d", source=url, sha256=sha256_of(archive)).status == "fetched"  # type: ignore[attr-defined]
    assert [path for path, _ in auth_server.seen] == ["/latest", "/" + ARCHIVE_NAME]
    assert all(login is not None for _, login in auth_server.seen)


def test_a_login_is_never_sent_along_a_redirect_to_another_server(
        tmp_path: Path, archive: Path, auth_server: RedirectingAuthServer) -> None:
    other = RedirectingAuthServer(archive.read_bytes(), "bob:s3cret")
    try:
        # another port of the same host is another server, as is another host name
        auth_server.location = f"http://{other.hostport}/{ARCHIVE_NAME}"
        url = f"http://bob:s3cret@{auth_server.hostport}/latest"
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", source=url, sha256=sha256_of(archive))
        assert "HTTP 401" in info.value.message and "s3cret" not in info.value.message
        assert other.seen == [("/" + ARCHIVE_NAME, None)]
        # and the hint says so, rather than blame the password (re-review)
        assert (f"the URL's login is not sent to {other.hostport}, where the server "
                "redirected") in (info.value.hint or ""), info.value.hint
        assert (f"--from http://USER:PASSWORD@{other.hostport}/{ARCHIVE_NAME}"
                in (info.value.hint or "")), info.value.hint
        assert "check the user name and password" not in (info.value.hint or "")
        auth_server.location = f"http://localhost:{other.httpd.server_address[1]}/{ARCHIVE_NAME}"
        with pytest.raises(DataError):
            fetch(tmp_path / "d", source=url, sha256=sha256_of(archive))
        assert other.seen[-1] == ("/" + ARCHIVE_NAME, None)
    finally:
        other.close()


def raising_urlopen(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def urlopen(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(fetch_module, "_urlopen", urlopen)


def test_an_untrusted_certificate_says_so_and_names_ssl_cert_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a TLS-intercepting proxy's certificate got "offline?" as its hint."""
    failure = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
           "certificate in certificate chain (_ssl.c:1006)")
    raising_urlopen(monkeypatch, urllib.error.URLError(failure))
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "d", source="https://mirror.example/" + ARCHIVE_NAME)
    message, hint = info.value.message, info.value.hint or ""
    assert "certificate" in message and "not trusted" in message, message
    assert "SSL_CERT_FILE=/path/to/ca-bundle.pem" in hint, hint
    assert "on a machine with network access" not in hint.split(";")[0]
    assert not (tmp_path / "d").exists()


def test_a_proxy_that_is_not_there_is_named(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = closed_port_url("").rstrip("/")
    monkeypatch.setenv("HTTPS_PROXY", proxy.replace("//", "//alice:pw@"))
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "d", source="https://mirror.example/" + ARCHIVE_NAME)
    message, hint = info.value.message, info.value.hint or ""
    assert f"through the proxy {proxy.replace('//', '//alice:***@')} (HTTPS_PROXY)" in message
    assert "HTTPS_PROXY" in hint and "unset" in hint, hint
    assert "pw@" not in message + hint


class Proxy407(LoopbackServer):
    """A proxy that wants a login: 407 to a plain request and to a CONNECT."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def refuse(self) -> None:
                self.reply(407, Proxy_Authenticate='Basic realm="corp"')

            do_GET = refuse  # noqa: N815 - http.server's names
            do_CONNECT = refuse  # noqa: N815

        self.serve(Handler)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_wants_a_login_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            scheme: str) -> None:
    proxy = Proxy407()
    try:
        variable = f"{scheme}_proxy"
        monkeypatch.setenv(variable, f"http://{proxy.hostport}")
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", source=f"{scheme}://mirror.example/{ARCHIVE_NAME}")
    finally:
        proxy.close()
    message, hint = info.value.message, info.value.hint or ""
    assert "407" in message and "proxy" in message and "login" in message, message
    assert f"http://USER:PASSWORD@{proxy.hostport}" in hint and variable in hint, hint



def test_both_spellings_of_a_proxy_variable_are_named_to_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Re-review: with https_proxy and HTTPS_PROXY both set, "unset https_proxy" left urllib
    # reading HTTPS_PROXY, and the same error came back.
    proxy = closed_port_url("").rstrip("/")
    monkeypatch.setenv("https_proxy", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    with pytest.raises(DataError) as info:
        fetch(tmp_path / "d", source="https://mirror.example/" + ARCHIVE_NAME)
    assert "`unset https_proxy HTTPS_PROXY`" in (info.value.hint or ""), info.value.hint


class Proxy502(LoopbackServer):
    """A proxy that answers, but cannot reach the server: 502 to a CONNECT."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_CONNECT(self) -> None:  # noqa: N802 - http.server's name
                self.reply(502)

        self.serve(Handler)


def test_a_proxy_that_cannot_reach_the_server_is_not_blamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Re-review: "Tunnel connection failed: 502" was told to check the proxy's host and port.
    proxy = Proxy502()
    try:
        monkeypatch.setenv("https_proxy", f"http://{proxy.hostport}")
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", source=f"https://no-such-host.invalid/{ARCHIVE_NAME}")
    finally:
        proxy.close()
    message, hint = info.value.message, info.value.hint or ""
    assert "the proxy could not reach no-such-host.invalid" in message, message
    assert "502" in message
    assert "check the proxy" not in hint and "unset" not in hint, hint

def test_a_redirect_loop_says_so(tmp_path: Path) -> None:
    class Loop(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.reply(302, Location=self.path)

    server = LoopbackServer()
    server.serve(Loop)
    try:
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", source=f"http://{server.hostport}/{ARCHIVE_NAME}")
    finally:
        server.close()
    message, hint = info.value.message, info.value.hint or ""
    assert "redirects in a loop" in message and "\n" not in message, message
    assert "direct link" in hint and "try again later" not in hint, hint


def test_a_server_that_never_answers_says_how_long_it_waited(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts the connection (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(DataError) as info:
            fetch(tmp_path / "d", timeout_s=0.5, source=f"http://{host}/{ARCHIVE_NAME}")
    assert info.value.message.endswith(f": no answer from {host} in 0.5 s"), info.value.message


def test_the_fetching_line_comes_before_a_bar_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: on a terminal a server that never answered left a blank screen for 60 s."""
    from dlbox.cli import main

    url = closed_port_url()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["data", "fetch", "--data", str(tmp_path / "d"), "--from", url]) != 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"fetching CIFAR-10 from {url} into {tmp_path / 'd'}")


def test_a_mirrors_data_refetched_without_its_sha256_gets_a_hint_that_works(
        tmp_path: Path, archive: Path) -> None:
    server = ArchiveServer(archive.read_bytes())
    try:
        sha = sha256_of(archive)
        fetch(tmp_path / "d", source=server.url, sha256=sha)
        with pytest.raises(UsageError) as info:
            fetch(tmp_path / "d", source=server.url)
        hint = info.value.hint or ""
        assert f"--sha256 {sha}" in hint and "leave out --from" in hint, hint
        assert not hint.startswith("pass --force")  # which fetched the same copy, and failed
        # what it says keeps the data, does
        assert fetch(tmp_path / "d", source=server.url, sha256=sha).status == "present"  # type: ignore[attr-defined]
    finally:
        server.close()


def test_a_refused_archive_is_named(tmp_path: Path, archive: Path) -> None:
    """Review: "refusing the archive: member 'cifar-100-python/train' is not a CIFAR-10 file"
    did not say which archive (or URL) was refused."""
    import io
    import tarfile

    foreign = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-100-python/train")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    server = ArchiveServer(foreign.read_bytes())
    try:
        for source, label in ((str(foreign), str(foreign)),
                              (server.url.replace("//", "//u:pw@"),
                               server.url.replace("//", "//u:***@"))):
            with pytest.raises(DataError) as refused:
                fetch(tmp_path / "d", source=source)
            message = refused.value.message
            assert message.startswith("refusing the archive: member 'cifar-100-python/train' "
                                      "is not a CIFAR-10 file"), message
            assert message.endswith(f", in {label}") and "pw@" not in message, message
    finally:
        server.close()
