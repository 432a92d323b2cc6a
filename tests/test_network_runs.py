"""Whole runs over the networks users have: a wrong path, HTTPS with a private CA, proxies.

TMDB is the emulator over real TCP (HTTPS with a certificate from a CA made here), the
proxy a real forward proxy on loopback (tests/forward_proxy.py), S3 moto's server. The
trust store is read when a run starts, so the HTTPS runs are `tmdb-ingest run` in a
subprocess with ``SSL_CERT_FILE`` in its environment, as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.forward_proxy import ForwardProxy, ProxyThread
from tests.helpers import ids, read_dir, read_s3
from tests.tls_certs import TlsFiles, make_tls_files
from tmdb_ingest.api import ingest
from tmdb_ingest.cli import main
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator import cli as emulator_cli
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import Emulator, EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import TmdbUnreachable
from tmdb_ingest.selection.reader import select_ids

pytestmark = pytest.mark.slow

KEY = "test-api-key"
HIDDEN = "tmdb.test"  # a host name only the test proxy resolves
PROXY_VARIABLES = ("https_proxy", "http_proxy", "no_proxy", "all_proxy")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), hosts=(HIDDEN,))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Another CA: trusting it alone, the emulator's certificate does not verify."""
    return make_tls_files(tmp_path_factory.mktemp("other"), label="other")


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "movies.csv"
    generate_movies_csv(path, movies=3000, seed=7)
    return path


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means; none leak in from the machine."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)


@pytest.fixture
def https_tmdb(tls: TlsFiles) -> Iterator[EmulatorThread]:
    config = EmulatorConfig(tls_cert=str(tls.server_cert), tls_key=str(tls.server_key))
    with EmulatorThread(config) as emu:
        yield emu


def cli_run(
    *args: str, env: dict[str, str], timeout: float = 120
) -> tuple[int, dict[str, Any], list[str]]:
    """`tmdb-ingest run ... --json` in a subprocess: exit code, summary, fatal lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "tmdb_ingest", "run", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    fatal = [line for line in proc.stderr.splitlines() if line.startswith("tmdb-ingest:")]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, summary, fatal


def trusting(ca: Path, tmp_path: Path) -> dict[str, str]:
    """The environment with ``ca`` as the whole trust store (an empty SSL_CERT_DIR)."""
    empty = tmp_path / "no-certs"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(empty)}


# -- the first request: a wrong path ---------------------------------------------------------


def test_a_wrong_path_exits_1_with_one_line_before_any_id(
    csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tmdb-url .../4 answers TMDB's 404 (code 34): exit 1, one line, one request, no id."""
    with EmulatorThread(EmulatorConfig()) as emu:
        wrong = emu.url.removesuffix("/3") + "/4"
        code = main(["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", wrong])
        requests = emu.stats.requests
    err = capsys.readouterr().err
    fatal = [line for line in err.splitlines() if line.startswith("tmdb-ingest:")]
    assert code == 1
    assert fatal == [
        f"tmdb-ingest: fatal: 404 with TMDB's code 34: not TMDB's v3 API at {wrong} "
        "(check --tmdb-url)"
    ]
    assert requests == 1
    landed = read_dir(tmp_path)
    assert not landed.report
    assert not landed.files


# -- HTTPS --------------------------------------------------------------------------------


def test_emulate_serves_https_with_tls_cert_and_key(tls: TlsFiles) -> None:
    """`tmdb-ingest emulate --tls-cert --tls-key` prints an https URL that verifies with the CA."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tmdb_ingest", "emulate", "--port", "0"),
            *("--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[3]
        assert url.startswith("https://127.0.0.1:"), url
        context = ssl.create_default_context(cafile=str(tls.ca_cert))
        with urllib.request.urlopen(  # noqa: S310 - our own https URL
            f"{url}/configuration?api_key={KEY}", timeout=5, context=context
        ) as answer:
            assert answer.status == 200
            assert "images" in json.loads(answer.read())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "requests: 1 (200: 1)" in out


def test_emulate_refuses_half_a_tls_pair_or_a_missing_file(
    tls: TlsFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tls-cert without --tls-key, or a file that is not there: exit 2, one line."""
    parser = argparse.ArgumentParser()
    emulator_cli.add_arguments(parser)
    half = parser.parse_args(["--port", "0", "--tls-cert", str(tls.server_cert)])
    assert emulator_cli.run(half) == 2
    assert "give both" in capsys.readouterr().err
    missing = str(tmp_path / "nope.pem")
    gone = parser.parse_args(["--port", "0", "--tls-cert", missing, "--tls-key", missing])
    assert emulator_cli.run(gone) == 2
    assert f"cannot load --tls-cert {missing}" in capsys.readouterr().err


def test_a_whole_run_over_https_with_the_private_ca_in_ssl_cert_file(
    csv: Path, tls: TlsFiles, https_tmdb: EmulatorThread, tmp_path: Path
) -> None:
    """SSL_CERT_FILE naming the CA: the run over HTTPS is done, every id exactly once."""
    assert https_tmdb.url.startswith("https://")
    out = tmp_path / "out"
    code, summary, fatal = cli_run(
        str(csv), "--out-dir", str(out), "--tmdb-url", https_tmdb.url, "--rate", "300",
        env=trusting(tls.ca_cert, tmp_path),
    )  # fmt: skip
    assert (code, fatal) == (0, [])
    assert summary["done"] is True
    selected = select_ids(csv).ids
    read_dir(out).assert_exactly_once(selected)
    assert summary["requests"] == https_tmdb.stats.requests == len(selected) + 1


def test_an_untrusted_certificate_is_fatal_with_its_reason_and_no_id(
    csv: Path, other_ca: TlsFiles, https_tmdb: EmulatorThread, tmp_path: Path
) -> None:
    """A CA that did not sign the certificate: exit 1, "certificate verify failed", nothing."""
    out = tmp_path / "out"
    code, summary, fatal = cli_run(
        str(csv), "--out-dir", str(out), "--tmdb-url", https_tmdb.url,
        env=trusting(other_ca.ca_cert, tmp_path),
    )  # fmt: skip
    assert code == 1
    assert len(fatal) == 1
    assert "certificate verify failed" in fatal[0]
    assert "SSL_CERT_FILE" in fatal[0]
    assert (summary["fetched"], summary["not_found"], summary["failed"]) == (0, 0, 0)
    assert https_tmdb.stats.requests == 0  # no request got past the handshake
    landed = read_dir(out)
    assert not landed.report
    assert not landed.files


# -- proxies ------------------------------------------------------------------------------


def test_tmdb_only_through_the_proxy_by_connect_and_s3_direct_by_no_proxy(
    csv: Path,
    tls: TlsFiles,
    https_tmdb: EmulatorThread,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    """HTTPS_PROXY carries every TMDB request (CONNECT); NO_PROXY sends S3 past it."""
    with pytest.raises(OSError):  # noqa: PT011 - any resolver error: the name is not public
        socket.getaddrinfo(HIDDEN, https_tmdb.port)
    url = f"https://{HIDDEN}:{https_tmdb.port}/3"
    with ProxyThread(hosts={HIDDEN: "127.0.0.1"}) as proxy:
        env = trusting(tls.ca_cert, tmp_path)
        env |= {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}
        code, summary, fatal = cli_run(
            str(csv), "--bucket", bucket, "--s3-endpoint-url", s3_endpoint,
            "--tmdb-url", url, "--rate", "300", env=env,
        )  # fmt: skip
        log = proxy.log
    assert (code, fatal) == (0, [])
    assert summary["done"] is True
    selected = select_ids(csv).ids
    read_s3(s3, bucket).assert_exactly_once(selected)
    assert log.connects  # every TMDB connection was a tunnel through the proxy
    assert log.targets == {f"{HIDDEN}:{https_tmdb.port}"}  # S3 never went through it
    assert log.requests == []
    assert summary["requests"] == https_tmdb.stats.requests == len(selected) + 1


@pytest.fixture
async def plain_tmdb() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(latency_ms=2)) as emu:
        yield emu


def settings(url: str, out: Path) -> Settings:
    return Settings(tmdb_url=url, api_key=KEY, out_dir=out, rate=400, concurrency=8)


async def test_plain_http_through_the_proxy_every_request_counted(
    plain_tmdb: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY: each request goes as an absolute-URI GET; the proxy saw every one."""
    async with ForwardProxy(hosts={HIDDEN: "127.0.0.1"}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        selected = ids(120)
        url = f"http://{HIDDEN}:{plain_tmdb.port}/3"
        summary = await ingest(selected, settings(url, tmp_path))
    assert summary.done
    read_dir(tmp_path).assert_exactly_once(selected)
    assert len(proxy.log.requests) == plain_tmdb.stats.requests == summary.requests
    assert proxy.log.requests[0] == f"{url}/configuration"  # the first, before any id
    assert not any(KEY in line for line in proxy.log.requests)


async def test_a_proxy_that_refuses_is_fatal_naming_it_without_credentials(
    plain_tmdb: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens at HTTPS_PROXY: fatal, the proxy's host:port named, no password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("https_proxy", f"http://alice:pw-0123@127.0.0.1:{port}")
    url = f"https://{HIDDEN}/3"
    with pytest.raises(TmdbUnreachable) as caught:
        await ingest(ids(20), settings(url, tmp_path))
    message = str(caught.value)
    assert f"the proxy 127.0.0.1:{port} (from https_proxy) could not be reached" in message
    assert "pw-0123" not in message
    assert "alice" not in message
    summary = caught.value.summary
    assert summary is not None
    assert (summary.fetched, summary.failed, summary.not_found) == (0, 0, 0)


async def test_a_proxy_that_wants_credentials_is_fatal_at_once_and_passes_with_them(
    tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """407 to CONNECT: fatal after one try; the same proxy with user:password in the URL works."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_cert))  # read when the session is made
    config = EmulatorConfig(tls_cert=str(tls.server_cert), tls_key=str(tls.server_key))
    async with (
        Emulator(config) as emu,
        ForwardProxy(hosts={HIDDEN: "127.0.0.1"}, credentials=("alice", "pw-0123")) as proxy,
    ):
        url = f"https://{HIDDEN}:{emu.port}/3"
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with pytest.raises(TmdbUnreachable) as caught:
            await ingest(ids(20), settings(url, tmp_path / "a"))
        refused = list(proxy.log.refused)
        monkeypatch.setenv("HTTPS_PROXY", f"http://alice:pw-0123@127.0.0.1:{proxy.port}")
        summary = await ingest(ids(20), settings(url, tmp_path / "b"))
    assert f"the proxy 127.0.0.1:{proxy.port} (from HTTPS_PROXY) answered HTTP 407" in str(
        caught.value
    )
    assert refused == [407]  # not retried: no retry gets past it
    assert summary.done
    assert summary.requests == emu.stats.requests == 21


async def test_a_proxy_that_cannot_reach_tmdb_is_fatal_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy answers 502 to CONNECT (TMDB not reachable from it): fatal, proxy named."""
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with pytest.raises(TmdbUnreachable) as caught:
            await ingest(ids(20), settings("https://nowhere.invalid/3", tmp_path))
    message = str(caught.value)
    assert f"the proxy 127.0.0.1:{proxy.port} (from HTTPS_PROXY) answered HTTP 502" in message
    assert proxy.log.refused == [502, 502, 502]  # three quick tries
    assert "did not answer at https://nowhere.invalid/3" in message


def test_a_refused_proxy_exits_1_with_one_line(
    csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI: a proxy that refuses is exit 1 and one line naming it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{port}")
    code = main(["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", f"https://{HIDDEN}/3"])
    fatal = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tmdb-")]
    assert code == 1
    assert len(fatal) == 1
    assert f"the proxy 127.0.0.1:{port} (from HTTPS_PROXY) could not be reached" in fatal[0]
