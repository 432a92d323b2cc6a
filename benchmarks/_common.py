"""Helpers shared by the benchmarks: the machine description and a few small tools."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("tmdb-ingest", "aiohttp", "aiolimiter", "aiobotocore", "polars", "orjson")
API_KEY = "test-api-key"  # the emulator's default valid key


def valid_ids(n: int, *, first: int = 1) -> list[str]:
    """``n`` well-formed IMDb ids, ``tt0000001`` onwards."""
    return [f"tt{k:07d}" for k in range(first, first + n)]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines() -> list[str]:
    """Markdown bullet lines describing the machine and the package versions."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"- CPU: {os.cpu_count()} cores, {cpu_model()}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"- Packages: {', '.join(versions)}",
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_int(name: str, default: int) -> int:
    """An integer from the environment variable ``name``, or ``default``."""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


class EmulatorProcess:
    """The TMDB emulator in its own process (``python -m tmdb_ingest emulate``).

    Its own process, so that its arrival time stamps are not delayed by the client
    holding the interpreter lock. Counters come from its ``/_emulator/stats`` endpoint.
    Stopped on exit, also when the body raises.
    """

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/3"
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> EmulatorProcess:
        command = [sys.executable, "-m", "tmdb_ingest", "emulate", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "TMDB emulator at" not in line:
            self.__exit__()
            raise RuntimeError(f"the emulator did not start: {line.strip()!r}")
        return self

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (requests, throttled, max_in_window, max_in_flight...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_emulator/stats") as r:
            return dict(json.loads(r.read()))

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


@contextmanager
def moto_process() -> Iterator[str]:
    """moto's S3 server in its own process; yield its URL; stop it on exit."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from moto.server import main; main()",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("moto's server did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def print_section(run: Callable[[list[str]], None]) -> None:
    """Run one benchmark on its own (``python -m benchmarks.bench_x``): print its section."""
    report: list[str] = []
    run(report)
    print("\n".join(report))
