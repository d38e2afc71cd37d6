"""Minimal WebSocket client transport (RFC 6455) for MQTT over ``ws://`` / ``wss://``.

Only what MQTT needs: the HTTP upgrade with subprotocol ``mqtt``, binary frames
(masked, as a client must), fragmented and control frames on receive (ping is
answered, close ends the connection). The MQTT protocol object sees an ordinary
asyncio transport carrying the MQTT byte stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import struct
from typing import Any

from gmqtt.mqtt.connection import MQTTConnection
from gmqtt.mqtt.protocol import MQTTProtocol

log = logging.getLogger("ddastate.com.websocket")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    head = bytearray([0x80 | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    mask = os.urandom(4)
    head += mask
    if n:
        # XOR with the repeated mask, via big integers (fast in CPython)
        m = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
    else:
        masked = b""
    return bytes(head) + masked


class _WsTransport(asyncio.Transport):
    """What the MQTT protocol writes to: frames every write as a binary message."""

    def __init__(self, raw: asyncio.Transport) -> None:
        super().__init__()
        self._raw = raw
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._raw.is_closing():
            return
        self._raw.write(_frame(0x2, bytes(data)))

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            try:
                self._raw.write(_frame(0x8, struct.pack("!H", 1000)))
            except Exception:
                pass
            self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()


class _WsProtocol(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, host: str, port: int, path: str) -> None:
        self._inner = inner
        self._host = host
        self._port = port
        self._path = path
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._buf = bytearray()
        self._handshake_done = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._raw: asyncio.Transport | None = None
        self.ws_transport: _WsTransport | None = None
        self._fragments = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        req = (
            f"GET {self._path} HTTP/1.1\r\n"
            f"Host: {self._host}:{self._port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        transport.write(req.encode())

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._handshake_done:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[: end + 4]
            lines = head.split("\r\n")
            if " 101 " not in lines[0] + " ":
                self._fail(ConnectionError(f"websocket upgrade refused: {lines[0]}"))
                return
            accept = base64.b64encode(hashlib.sha1(self._key.encode() + _GUID).digest()).decode()
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if hdrs.get("sec-websocket-accept") != accept:
                self._fail(ConnectionError("websocket upgrade: bad Sec-WebSocket-Accept"))
                return
            self._handshake_done = True
            assert self._raw is not None
            self.ws_transport = _WsTransport(self._raw)
            self._inner.connection_made(self.ws_transport)
            if not self.ready.done():
                self.ready.set_result(None)
        self._parse_frames()

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self._raw is not None:
            self._raw.close()

    def _parse_frames(self) -> None:
        buf = self._buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            mask = None
            if b1 & 0x80:
                if len(buf) < pos + 4:
                    return
                mask = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos : pos + n])
            del buf[: pos + n]
            if mask is not None:
                m = (mask * (n // 4 + 1))[:n]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(
                    n, "big"
                )
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode in (0x0, 0x1, 0x2):
                self._fragments += payload
                if fin:
                    data = bytes(self._fragments)
                    self._fragments.clear()
                    self._inner.data_received(data)
            elif opcode == 0x9 and self._raw is not None:  # ping -> pong
                self._raw.write(_frame(0xA, payload))
            elif opcode == 0x8 and self._raw is not None:  # close
                self._raw.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("connection closed during handshake"))
        if self._handshake_done:
            self._inner.connection_lost(exc)


async def ws_create_connection(
    host: str,
    port: int,
    ssl: Any,
    path: str,
    clean_session: bool,
    keepalive: int,
    *,
    connection_state: Any,
    package_handler: Any,
    logger: Any = None,
    protocol_class: type[MQTTProtocol] = MQTTProtocol,
) -> MQTTConnection:
    """Like gmqtt's MQTTConnection.create_connection, over a WebSocket."""
    loop = asyncio.get_running_loop()
    inner = protocol_class(
        connection_state=connection_state, id_generator=package_handler.id_generator
    )
    raw, proto = await loop.create_connection(
        lambda: _WsProtocol(inner, host, port, path), host, port, ssl=ssl or None
    )
    try:
        async with asyncio.timeout(10.0):
            await proto.ready
    except BaseException:
        raw.close()
        raise
    assert proto.ws_transport is not None
    return MQTTConnection(
        proto.ws_transport,
        inner,
        clean_session,
        keepalive,
        package_handler=package_handler,
        logger=logger,
    )
