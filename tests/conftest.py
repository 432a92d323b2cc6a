"""Shared fixtures: a real S3 API (moto's server over HTTP) started by the tests, the event
loop of tests marked ``virtual_clock`` (tests/virtual_clock.py), and the ``slow`` rule.

``slow`` marks every test that starts a process or a server, so that ``pytest -m "not
slow"`` runs in seconds: a test that takes a fixture which starts one (:data:`SERVERS`) is
marked here; any other test that starts one itself carries the mark, or fails saying so
(:func:`_no_servers_unless_slow`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.virtual_clock import VirtualClock, VirtualTimeLoop

pytest_plugins = ["tests.fixtures_emulator"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "virtual_clock(auto=True, lateness=0.0, seed=0): run on tests.virtual_clock's "
        "VirtualTimeLoop; auto=False: time moves only by loop.advance()",
    )


# Fixtures that start a server (moto's, or the emulator over TCP), directly or through
# another fixture: a test that takes one is slow.
SERVERS = frozenset({"moto_server", "emulator", "emulator_factory"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI in-process installs its log handler (stderr, its secrets
    redacted) on the root logger; it is removed after the test, so a later test's log
    records are neither redacted with another test's secrets nor written to a closed
    stream."""
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_servers_unless_slow(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a test not marked ``slow``, listening on a socket or starting a process fails."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return

    message = f"{request.node.nodeid} starts a server or a process: mark it @pytest.mark.slow"

    def refuse_listen(self: socket.socket, *args: Any) -> None:
        self.close()  # not left for the GC to warn about during a later test
        raise RuntimeError(message)

    def refuse_process(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(message)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "listen", refuse_listen)
        patch.setattr(subprocess, "Popen", refuse_process)  # subprocess.run, asyncio's too
        yield


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """A VirtualTimeLoop for tests marked ``virtual_clock``, asyncio's own loop otherwise."""
    marker = item.get_closest_marker("virtual_clock")
    if marker is None:
        return {"asyncio": asyncio.new_event_loop}
    options = dict(marker.kwargs)
    auto = options.pop("auto", True)
    clock = functools.partial(VirtualClock, **options)
    return {"virtual": lambda: VirtualTimeLoop(clock(), auto=auto)}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free port for the whole session; yield its URL."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's URL, with dummy AWS credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[object]:
    """A plain boto3 S3 client on moto, for arranging and inspecting buckets."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    yield client
    client.close()


@pytest.fixture
def bucket(s3: object, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket named after the test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name
