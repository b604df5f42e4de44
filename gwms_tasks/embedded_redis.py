"""A private redis-server on a free loopback port (never 6379), for the demo and the tests.

It runs the way the state Redis must (DESIGN): AOF with ``appendfsync everysec`` and the
``noeviction`` policy, in a directory of its own, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


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
    """A running private redis-server process (``password``: the ``default`` user's, if any)."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    password: str | None = None

    @property
    def url(self) -> str:
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(
    binary: str = "redis-server",
    directory: Path | None = None,
    *,
    persist_acl: bool = False,
    password: str | None = None,
    attempts: int = 5,
) -> RedisServer:
    """Start redis-server with AOF and noeviction in ``directory`` (a new temporary one if None).

    With ``persist_acl`` its ACL users are saved in ``<directory>/users.acl`` (as a production
    dashboard Redis must: frontends' accounts survive a restart). With ``password`` the
    ``default`` user (every right) needs it, so that other local processes cannot write the
    dashboard under a frontend's name; it is given to the server in a file of ``directory``
    (hashed), never on its command line, which every local user can read.

    The port is free when chosen, but another process may take it before the server binds it:
    the server then exits, and it is started again on another port, up to ``attempts`` times.
    Only a server that reports this process's pid is accepted, so a ping never reaches (and
    a caller never flushes) someone else's Redis.

    Raises:
        FileNotFoundError: no ``binary`` on the PATH.
        ValueError: an empty password, or one with whitespace.
        RuntimeError: it exited ``attempts`` times, or did not answer within 10 seconds.
    """
    if password is not None and (not password or any(ch.isspace() for ch in password)):
        raise ValueError("a Redis password must be non-empty and without whitespace")
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(binary)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="gwms-redis-"))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings = _settings_file(directory, persist_acl, password)
    exited = "never started"
    for _ in range(attempts):
        port = free_port()
        args = [exe, *settings, *_arguments(port, directory)]
        if persist_acl:  # frontends' dashboard accounts survive a restart (ACL SAVE writes here)
            args += ["--aclfile", str(directory / "users.acl")]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = RedisServer(proc, port, directory, password)
        if _answers(server):
            return server
        if proc.poll() is None:  # alive but silent: give up
            server.stop()
            raise RuntimeError(f"redis-server on port {port} did not start")
        exited = f"code {proc.returncode} on port {port}: {_last_log(directory)}"
    raise RuntimeError(f"redis-server exited {attempts} times at start (last: {exited})")


def _arguments(port: int, directory: Path) -> list[str]:
    return [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip


def _settings_file(directory: Path, persist_acl: bool, password: str | None) -> list[str]:
    """Write the ``default`` user's rules where the server reads them; its leading arguments.

    Without an ACL file they go in ``redis.conf`` (passed first). With one they go in the ACL
    file instead, replacing its ``default`` line: a loaded ACL file overrides every other
    setting of that user.
    """
    acl_file = directory / "users.acl"
    if persist_acl:
        acl_file.touch(mode=0o600)
    if password is None:
        return []
    rule = f"user default on #{hashlib.sha256(password.encode()).hexdigest()} ~* &* +@all\n"
    if persist_acl:
        kept = [line for line in acl_file.read_text().splitlines(keepends=True)
                if not line.startswith("user default ")]  # fmt: skip
        acl_file.write_text(rule + "".join(kept))
        return []
    config = directory / "redis.conf"
    config.touch(mode=0o600)
    config.write_text(rule)
    return [str(config)]


def _answers(server: RedisServer, timeout: float = 10.0) -> bool:
    """Wait until ``server`` answers as itself; False as soon as its process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        client = redis.Redis(
            host="127.0.0.1",
            port=server.port,
            password=server.password,
            socket_timeout=0.5,  # a listener that never answers must not hang the wait
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),  # this loop is the retry
        )
        try:
            info = client.info("server")
            if int(info.get("process_id", -1)) == server.process.pid:
                return True
        except redis.RedisError:
            pass  # not listening yet, or another server holds the port (ours will exit)
        finally:
            client.close()
        time.sleep(0.05)
    return False


def _last_log(directory: Path) -> str:
    try:
        lines = (directory / "redis.log").read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"
