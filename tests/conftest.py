"""Common fixtures of the ddastate test suite.

Brokers (a real Mosquitto on a free 127.0.0.1 port):
- ``mosquitto``: a fresh broker for one test (kill / restart it freely).
- ``mosquitto_module``: one broker for a test module.
- ``mosquitto_session``: one broker for the whole run (do not kill it).

Communication:
- ``loopback_bus``: a fresh LoopbackBus.
- ``com_protocol``: parametrized "loopback" / "mqtt5" (mqtt5 marked ``mqtt``).
- ``com_factory``: a ComFactory for ``com_protocol``: ``cfg = com_factory.config()``
  gives a Config with a cluster unique to the test and the broker url;
  ``com = await com_factory.open(cfg)`` gives an open binding; all are closed
  after the test.
- ``loopback_factory`` / ``mqtt5_factory``: the same for one protocol.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ddastate.com._core import BindingCore
from ddastate.com.loopback import LoopbackBinding, LoopbackBus
from ddastate.com.mqtt5 import Mqtt5Binding
from ddastate.config import Config
from ddastate.testing.mosquitto import Mosquitto

_cluster_seq = itertools.count(1)


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto for this test only."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="module")
def mosquitto_module() -> Iterator[Mosquitto]:
    """A Mosquitto shared by the tests of one module."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_session() -> Iterator[Mosquitto]:
    """A Mosquitto shared by the whole run; tests must not stop it."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def loopback_bus() -> LoopbackBus:
    """A fresh in-process bus (seeded, so faults are reproducible)."""
    return LoopbackBus(seed=1)


class ComFactory:
    """Creates configured, opened bindings of one protocol; closes them at the end."""

    def __init__(self, protocol: str, bus: LoopbackBus | None, broker: Mosquitto | None) -> None:
        self.protocol = protocol
        self.bus = bus
        self.broker = broker
        self.cluster = f"t{os.getpid()}-{next(_cluster_seq)}"
        self.bindings: list[BindingCore] = []

    def config(self, **com_opts: Any) -> Config:
        """A Config for a new member: unique test cluster, broker url, given com opts."""
        cfg = Config()
        cfg.cluster = self.cluster
        cfg.services.com.protocol = self.protocol
        if self.broker is not None:
            cfg.services.com.url = self.broker.url
        cfg.services.com.opts.update(com_opts)
        return cfg.validate()

    def binding(self) -> BindingCore:
        """A new unopened binding (closed at the end of the test)."""
        b: BindingCore
        if self.protocol == "loopback":
            assert self.bus is not None
            b = LoopbackBinding(self.bus)
        else:
            b = Mqtt5Binding()
        self.bindings.append(b)
        return b

    async def open(self, cfg: Config | None = None, **com_opts: Any) -> Any:
        """A new binding opened with ``cfg`` (default: ``self.config(**com_opts)``)."""
        b = self.binding()
        await b.open(cfg if cfg is not None else self.config(**com_opts))  # type: ignore[attr-defined]
        return b

    async def close_all(self) -> None:
        """Close every binding made here."""
        for b in self.bindings:
            try:
                await b.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self.bindings.clear()


@pytest.fixture(params=["loopback", pytest.param("mqtt5", marks=pytest.mark.mqtt)])
def com_protocol(request: pytest.FixtureRequest) -> str:
    """Each com test runs once per protocol."""
    return str(request.param)


@pytest.fixture
async def com_factory(
    com_protocol: str, request: pytest.FixtureRequest
) -> AsyncIterator[ComFactory]:
    """Bindings of the parametrized protocol (mqtt5 on the session broker)."""
    broker = request.getfixturevalue("mosquitto_session") if com_protocol == "mqtt5" else None
    f = ComFactory(com_protocol, LoopbackBus(seed=1), broker)
    yield f
    await f.close_all()


@pytest.fixture
async def loopback_factory() -> AsyncIterator[ComFactory]:
    """Loopback bindings on a fresh bus."""
    f = ComFactory("loopback", LoopbackBus(seed=1), None)
    yield f
    await f.close_all()


@pytest.fixture
async def mqtt5_factory(mosquitto_session: Mosquitto) -> AsyncIterator[ComFactory]:
    """MQTT 5 bindings on the session broker."""
    f = ComFactory("mqtt5", None, mosquitto_session)
    yield f
    await f.close_all()
