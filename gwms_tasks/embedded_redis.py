"""A private redis-server on a free loopback port (never 6379), for the demo and the tests.

It runs the way the state Redis must (DESIGN): AOF with ``appendfsync everysec`` and the
``noeviction`` policy, in a directory of its own, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that is not Redis' default port."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:
            return port


@dataclass
class RedisServer:
    """A running private redis-server process."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(
    binary: str = "redis-server", directory: Path | None = None, *, persist_acl: bool = False
) -> RedisServer:
    """Start redis-server with AOF and noeviction in ``directory`` (a new temporary one if None).

    With ``persist_acl`` its ACL users are saved in ``<directory>/users.acl`` (as a production
    dashboard Redis must: frontends' accounts survive a restart).

    Raises:
        FileNotFoundError: no ``binary`` on the PATH.
        RuntimeError: it did not answer within 10 seconds.
    """
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(binary)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="gwms-redis-"))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    args = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        str(directory / "redis.log"),
    ]
    if persist_acl:  # frontends' dashboard accounts survive a restart (ACL SAVE writes here)
        acl_file = directory / "users.acl"
        acl_file.touch(mode=0o600)
        args += ["--aclfile", str(acl_file)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(proc, port, directory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if server.client().ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redis-server on port {port} did not start")
