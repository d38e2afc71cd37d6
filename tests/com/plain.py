"""A plain gmqtt client (not our binding) for wire-level tests."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50


@dataclass
class Seen:
    """One PUBLISH as a plain MQTT 5 client received it."""

    topic: str
    payload: bytes
    user_properties: list[tuple[str, str]]
    response_topic: str | None
    correlation_data: bytes | None
    retain: int
    qos: int


@dataclass
class PlainClient:
    """gmqtt client recording everything it receives."""

    client: Any
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    subacks: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    @classmethod
    async def connect(cls, port: int, subscribe: str | None = "#") -> PlainClient:
        c = gmqtt.Client(f"plain-{uuid.uuid4()}")
        pc = cls(c)
        c.on_message = pc._on_message
        c.on_subscribe = lambda _c, mid, qos, props: pc.subacks.put_nowait(mid)
        await c.connect("127.0.0.1", port, version=MQTTv50)
        if subscribe:
            await pc.subscribe(subscribe)
        return pc

    async def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=0)
        await asyncio.wait_for(self.subacks.get(), 5)

    def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, props: dict[str, Any]
    ) -> int:
        self.seen.append(
            Seen(
                topic,
                payload,
                list(props.get("user_property", [])),
                (props.get("response_topic") or [None])[0],
                (props.get("correlation_data") or [None])[0],
                props.get("retain", 0),
                qos,
            )
        )
        self.arrived.set()
        return 0

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> Seen:
        """The first received message satisfying ``pred`` (waits for it)."""

        async def _wait() -> Seen:
            while True:
                for s in self.seen:
                    if pred(s):
                        return s
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def publish(self, topic: str, payload: bytes, **props: Any) -> None:
        """Publish with MQTT 5 properties given as gmqtt keyword arguments."""
        self.client.publish(topic, payload, qos=0, **props)

    async def close(self) -> None:
        await self.client.disconnect()
