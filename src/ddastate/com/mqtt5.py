"""MQTT 5 binding on gmqtt, wire-compatible with the reference (WIRE.md section 1).

Topics ``<cluster>/<scope>/<level>/<type>``; user properties in the reference's
order (``id, sr, tm, dt`` for events; ``id, sr, dt`` for actions and queries;
``ct, dt, sq`` for results); response topic ``<c>/<s>/acr|qrr/<type>/<own id>``
and a UUID v4 string as correlation data. Instead of subscribing per request,
each member holds two permanent subscriptions ``<c>/+/acr/+/<own id>`` and
``<c>/+/qrr/+/<own id>``. Every subscription carries an MQTT 5 subscription
identifier so that a message is routed exactly to the subscriptions that
matched it (shared and non-shared ones on the same topic stay apart).

gmqtt manages the connection (CONNECT, keep-alive, QoS acknowledgements,
reconnects). The hot path, PUBLISH encode and decode, is done here: it is
simple and several times cheaper than going through gmqtt's generic property
machinery.

After a broker restart or a dropped connection the binding reconnects every
``connectRetryDelay`` ms and restores all subscriptions itself. Publishing
while disconnected raises ComNotConnectedError at QoS 0; at QoS 1 and 2 the
message is kept and sent after the reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import struct
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from gmqtt import Client
from gmqtt.mqtt.connection import MQTTConnection
from gmqtt.mqtt.constants import UNLIMITED_RECONNECTS, MQTTv50
from gmqtt.mqtt.package import Package
from gmqtt.mqtt.protocol import BaseMQTTProtocol, MQTTProtocol
from gmqtt.subscription import Subscription as GSubscription

from ddastate.com._core import BindingCore, UserProps
from ddastate.com.api import ComError, ComNotConnectedError, ComNotOpenError
from ddastate.com.websocket import ws_create_connection
from ddastate.config import Config, ConfigError

__all__ = ["ComConnectError", "Mqtt5Binding", "client_id_for"]

log = logging.getLogger("ddastate.com.mqtt5")

_STRICT = re.compile(r"[^0-9a-zA-Z]")
_U16 = struct.Struct("!H")


class ComConnectError(ComError):
    """The broker could not be reached within the open timeout. Retryable."""

    retryable = True


def client_id_for(cfg: Config) -> str:
    """MQTT client id of the reference: name + id; strictClientId keeps [0-9a-zA-Z], 23 chars."""
    cid = cfg.identity.name + cfg.identity.id
    if cfg.services.com.opt("strictClientId") is True:
        cid = _STRICT.sub("0", cid)[:23]
    return cid


def _vbi(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _str16(s: str) -> bytes:
    b = s.encode()
    return _U16.pack(len(b)) + b


_PAIR_CACHE: dict[tuple[str, str], bytes] = {}
_TOPIC_CACHE: dict[str, bytes] = {}


def _user_prop(k: str, v: str) -> bytes:
    b = _PAIR_CACHE.get((k, v))
    if b is None:
        b = b"\x26" + _str16(k) + _str16(v)
        if len(_PAIR_CACHE) > 8192:
            _PAIR_CACHE.clear()
        _PAIR_CACHE[(k, v)] = b
    return b


def encode_publish(
    topic: str,
    payload: bytes,
    props: UserProps,
    response_topic: str | None,
    corr: bytes | None,
    qos: int = 0,
    mid: int | None = None,
) -> bytes:
    """One MQTT 5 PUBLISH packet (retain false)."""
    parts = [_user_prop(k, v) for k, v in props]
    if response_topic is not None:
        parts.append(b"\x08" + _str16(response_topic))
    if corr is not None:
        parts.append(b"\x09" + _U16.pack(len(corr)) + corr)
    prop = b"".join(parts)
    head = _TOPIC_CACHE.get(topic)
    if head is None:
        head = _str16(topic)
        if len(_TOPIC_CACHE) > 4096:
            _TOPIC_CACHE.clear()
        _TOPIC_CACHE[topic] = head
    if qos:
        assert mid is not None
        head += _U16.pack(mid)
    lp = len(prop)
    plen = bytes((lp,)) if lp < 128 else _vbi(lp)
    body_len = len(head) + len(plen) + lp + len(payload)
    return b"".join((bytes((0x30 | (qos << 1),)), _vbi(body_len), head, plen, prop, payload))


class _Client(Client):  # type: ignore[misc]
    """gmqtt Client with the hooks this binding needs."""

    def __init__(self, binding: Mqtt5Binding, client_id: str, **kwargs: Any) -> None:
        super().__init__(client_id, **kwargs)
        self._binding = binding
        self._ws_path: str | None = None

    async def reconnect(self, delay: bool = False) -> None:
        # The first attempt after losing a healthy connection goes at once (a network
        # blip heals in milliseconds); later attempts wait connectRetryDelay. A
        # connection that keeps dropping right after CONNACK (e.g. two members with
        # one client id) is retried at the normal cadence only.
        b = self._binding
        if (
            delay
            and self._connection_state.failed_connections == 0
            and time.monotonic() - b._last_connack > b._retry_delay
        ):
            delay = False
        await super().reconnect(delay=delay)

    def _clear_resend_qos_queue(self) -> None:
        # A new session (clean start, or a restarted broker without persistence):
        # gmqtt would drop unacknowledged QoS>0 messages; send them again instead
        # (at-least-once), after the subscriptions were restored in on_connect.
        if not self._persistent_storage.is_empty:
            self._binding._spawn(self._resend_qos_messages())

    async def _create_connection(
        self, host: str, port: int, ssl: Any, clean_session: bool, keepalive: int
    ) -> Any:
        # gmqtt's own steps before a connection (see Client._create_connection), then
        # the connection with our protocol class
        self._exit_reconnecting_state()
        self._package_handler.clear_topics_aliases()
        self._connack_received.clear()
        self._connection_lost.clear()
        options = {
            "connection_state": self._connection_state,
            "id_generator": self._package_handler.id_generator,
        }
        conn: Any
        if self._ws_path is None:
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.create_connection(
                partial(_MqttProtocol, **options), host, port, ssl=ssl
            )
            conn = MQTTConnection(
                transport,
                protocol,
                clean_session,
                keepalive,
                package_handler=self._package_handler,
                logger=self._logger,
            )
        else:
            conn = await ws_create_connection(
                host,
                port,
                ssl,
                self._ws_path,
                clean_session,
                keepalive,
                connection_state=self._connection_state,
                package_handler=self._package_handler,
                logger=self._logger,
                protocol_class=_MqttProtocol,
            )
        conn._protocol.attach(partial(self._binding._fast_read_packet, conn))
        return conn


#: bytes read from the broker's socket at once (asyncio's own read size)
_READ_SIZE = 256 * 1024


class _MqttProtocol(MQTTProtocol, asyncio.BufferedProtocol):  # type: ignore[misc]
    """gmqtt's protocol, with incoming bytes parsed as they arrive.

    gmqtt feeds a StreamReader that a reader task drains: a task wake-up and an
    extra event loop pass for every socket read. Here the bytes go straight to
    the binding's packet splitter.

    The socket is read into one buffer kept for the connection. A plain protocol
    gets a new 256 KiB bytes object per read, which glibc serves with mmap and
    then shrinks and unmaps: three system calls and a page fault for every
    message the member receives. (uvloop sees an ``asyncio.Protocol`` and calls
    ``data_received`` with bytes cut from its own buffer, which costs none of that.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_bytes: Callable[[bytes], int] | None = None
        self._early = bytearray()
        self._read_view = memoryview(bytearray(_READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_view[:nbytes]))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        BaseMQTTProtocol.connection_made(self, transport)  # without gmqtt's reader task

    def attach(self, on_bytes: Callable[[bytes], int]) -> None:
        """Start handing incoming bytes to ``on_bytes`` (returns -1 for garbage)."""
        self._on_bytes = on_bytes
        if self._early:  # nothing is expected before our CONNECT; kept all the same
            data = bytes(self._early)
            self._early.clear()
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        on_bytes = self._on_bytes
        if on_bytes is None:
            self._early += data
        elif on_bytes(data) < 0:
            log.warning("closing the broker connection: malformed packet length")
            self._transport.close()

    def eof_received(self) -> bool:
        return False  # the transport closes; gmqtt sees the connection lost


class Mqtt5Binding(BindingCore):
    """Communication binding for MQTT 5 (protocol ``mqtt5``)."""

    def __init__(self) -> None:
        super().__init__()
        self._client: _Client | None = None
        self._connected = False
        self._ever_connected = False
        self._suback: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._last_connack = 0.0
        self._retry_delay = 1.0
        self._connected_event: asyncio.Event | None = None
        self._disconnected_event: asyncio.Event | None = None
        self._disconnected_at: float | None = None
        #: seconds from connection loss to CONNACK, for each reconnect
        self.reconnect_durations: list[float] = []
        self.client_id = ""

    # ------------------------------------------------------------------ open/close

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the broker connection is up (e.g. after a broker restart)."""
        if self._connected_event is None:
            raise ComNotOpenError("binding is not open")
        async with asyncio.timeout(timeout):
            await self._connected_event.wait()

    async def wait_disconnected(self, timeout: float | None = None) -> None:
        """Wait until the broker connection is lost."""
        if self._disconnected_event is None:
            raise ComNotOpenError("binding is not open")
        async with asyncio.timeout(timeout):
            await self._disconnected_event.wait()

    async def open(self, cfg: Config, timeout: float | None = None) -> None:
        """Connect to the broker of ``cfg.services.com.url`` and subscribe response topics.

        Retries every connectRetryDelay ms until ``timeout`` (default: the
        connectTimeout option) and then raises ComConnectError.
        """
        if self._open:
            return
        self._setup(cfg)
        com = cfg.services.com
        url = com.url or "tcp://localhost:1883"
        host, port, ssl_ctx, ws_path = _parse_url(url, cfg)
        retry_delay = int(com.opt("connectRetryDelay")) / 1000.0
        self._retry_delay = retry_delay
        if timeout is None:
            timeout = int(com.opt("connectTimeout")) / 1000.0
        keepalive = int(com.opt("keepAlive"))
        if com.opt("debug") is True:
            logging.getLogger("gmqtt").setLevel(logging.DEBUG)
            log.setLevel(logging.DEBUG)

        self.client_id = client_id_for(cfg)
        self._ever_connected = False
        self._connected = False
        self._out = []
        self._flush_scheduled = False
        client = _Client(self, self.client_id, clean_session=True, session_expiry_interval=0)
        client._ws_path = ws_path
        client.set_config(
            {"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": retry_delay}
        )
        if com.auth.username or com.auth.password:
            client.set_auth_credentials(com.auth.username, com.auth.password or None)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_gmqtt_message  # fallback; fast path below
        client._package_handler._handle_publish_packet = self._handle_publish_packet
        self._client = client
        self._connected_event = asyncio.Event()
        self._disconnected_event = asyncio.Event()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_exc: BaseException | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a
                # cancellation that arrives as the awaited operation completes
                async with asyncio.timeout(remaining):
                    await client.connect(
                        host, port, ssl=ssl_ctx, keepalive=keepalive, version=MQTTv50
                    )
                break
            except (TimeoutError, OSError, ssl.SSLError) as exc:
                last_exc = exc
            except Exception as exc:  # gmqtt MQTTConnectError etc.
                last_exc = exc
                if "Refused" in str(exc) and "unavailable" not in str(exc):
                    break
            await asyncio.sleep(min(retry_delay, max(0.0, deadline - loop.time())))
        if not self._connected:
            client._is_active = False
            try:
                client.stop_reconnect()
                if client._connection is not None:
                    await client._connection.close()
            except Exception:
                pass
            self._client = None
            raise ComConnectError(
                f"cannot connect to MQTT broker at {url}: {last_exc or 'timeout'}"
            )
        props = client._package_handler._connack_properties
        ssa = props.get("shared_subscription_available")
        self._shared_sub_available = not ssa or bool(ssa[0])
        self._open = True
        try:
            for f, sid in self._response_filters():
                await self._subscribe_filter(f, sid)
        except BaseException:
            await self.close()
            raise
        log.info("MQTT5 binding connected to %s as %s", url, self.client_id)

    async def close(self) -> None:
        """Disconnect from the broker; ends all subscriptions and pending requests."""
        client = self._client
        if client is None:
            return
        self._flush_out()  # what was published before close() still goes out
        self._client = None
        self._teardown()
        self._connected = False
        for fut in self._suback.values():
            if not fut.done():
                fut.cancel()
        self._suback.clear()
        try:
            async with asyncio.timeout(1.0):
                await client.disconnect()
        except Exception as exc:
            log.debug("disconnect: %s", exc)
        log.info("MQTT5 binding closed")

    async def __aenter__(self) -> Mqtt5Binding:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ gmqtt callbacks

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        self._connected = True
        self._last_connack = time.monotonic()
        if self._connected_event is not None:
            self._connected_event.set()
        if self._disconnected_event is not None:
            self._disconnected_event.clear()
        if self._ever_connected:
            if self._disconnected_at is not None:
                dt = time.monotonic() - self._disconnected_at
                self.reconnect_durations.append(dt)
                log.info("reconnected to broker after %.3f s; restoring subscriptions", dt)
            self._disconnected_at = None
            # restore every subscription (the broker lost them)
            for topic_filter, sid, no_local in self._active_filters():
                try:
                    self._send_subscribe(topic_filter, sid, no_local)
                except Exception as exc:
                    log.warning("resubscribe %s failed: %s", topic_filter, exc)
        self._ever_connected = True

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self._out = []  # QoS 0 packets not yet written are lost; QoS 1/2 ones are kept by gmqtt
        if self._connected:
            log.warning("broker connection lost; reconnecting")
            self._disconnected_at = time.monotonic()
        self._connected = False
        if self._connected_event is not None:
            self._connected_event.clear()
        if self._disconnected_event is not None:
            self._disconnected_event.set()
        for fut in self._suback.values():
            if not fut.done():
                fut.set_exception(ComNotConnectedError("connection lost before SUBACK"))
        self._suback.clear()

    def _on_subscribe(self, client: Any, mid: int, qos: tuple[int, ...], properties: Any) -> None:
        fut = self._suback.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(tuple(qos))

    def _on_gmqtt_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]
    ) -> None:
        self._on_message(
            topic,
            payload,
            properties.get("user_property"),
            (properties.get("response_topic") or [None])[0],
            (properties.get("correlation_data") or [None])[0],
            properties.get("subscription_identifier"),
        )

    def _handle_publish_packet(self, cmd: int, raw: bytes) -> None:
        """PUBLISH handler for gmqtt's generic path (the fast read loop bypasses it)."""
        self._parse_publish(cmd, raw, 0, len(raw))

    def _fast_read_packet(self, conn: Any, data: bytes) -> int:
        """Split the byte stream into packets: PUBLISH goes straight to our
        decoder, the rest to gmqtt's packet handler.

        It always consumes all of ``data`` (returns its length, or -1 for a
        malformed length): an incomplete packet is kept here in a bytearray, so a
        large message (a snapshot) costs linear time instead of gmqtt's
        re-concatenation of its whole buffer on every read.
        """
        n = len(data)
        if conn._handler.current_connection is not conn:
            return n  # a superseded connection: drop what it still delivers
        conn._last_data_in = time.monotonic()
        rx: bytearray | None = getattr(conn, "_dd_rx", None)
        if rx:
            rx += data
            if len(rx) < conn._dd_need:
                return n  # the pending packet is still incomplete
            buf = bytes(rx)
            rx.clear()
        else:
            buf = data
        left, need = self._split_packets(conn, buf)
        if left < 0:
            return -1
        if left < len(buf):
            if rx is None:
                rx = bytearray()
                conn._dd_rx = rx
            rx += buf[left:]
            conn._dd_need = need
        return n

    def _split_packets(self, conn: Any, data: bytes) -> tuple[int, int]:
        """Handle the complete packets in ``data``; return (offset of the incomplete
        rest, bytes that rest needs before it can be parsed; 0 if unknown)."""
        n = len(data)
        pos = 0
        parse = self._parse_publish
        put = conn.put_package
        while n - pos >= 2:
            cmd = data[pos]
            i = pos + 1
            rl = 0
            shift = 0
            while True:
                if i >= n:
                    return pos, 0
                b = data[i]
                i += 1
                rl |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    return -1, 0
            end = i + rl
            if end > n:
                return pos, end - pos
            if cmd & 0xF0 == 0x30:
                parse(cmd, data, i, end)
            else:
                put(Package(cmd, data[i:end]))
            pos = end
        return pos, 0

    def _parse_publish(self, cmd: int, raw: bytes, pos: int, stop: int) -> None:
        """Decode one PUBLISH body raw[pos:stop]; malformed packets are dropped."""
        try:
            qos = (cmd >> 1) & 3
            tlen = (raw[pos] << 8) | raw[pos + 1]
            pos += 2
            topic = raw[pos : pos + tlen].decode()
            pos += tlen
            if qos:
                mid = (raw[pos] << 8) | raw[pos + 1]
                pos += 2
                h = self._client._package_handler if self._client is not None else None
                if h is not None:
                    if qos == 1:
                        h._send_puback(mid)
                    else:
                        h._send_pubrec(mid)
            # property length (variable byte integer)
            b = raw[pos]
            pos += 1
            plen = b & 0x7F
            shift = 7
            while b & 0x80:
                b = raw[pos]
                pos += 1
                plen |= (b & 0x7F) << shift
                shift += 7
            end = pos + plen
            if end > stop:
                log.warning("dropping malformed PUBLISH on %r", topic)
                return
            user: list[tuple[str, str]] = []
            rt: str | None = None
            corr: bytes | None = None
            sids: list[int] | None = None
            while pos < end:
                pid = raw[pos]
                pos += 1
                if pid == 0x26:
                    kl = (raw[pos] << 8) | raw[pos + 1]
                    pos += 2
                    k = raw[pos : pos + kl].decode()
                    pos += kl
                    vl = (raw[pos] << 8) | raw[pos + 1]
                    pos += 2
                    v = raw[pos : pos + vl].decode()
                    pos += vl
                    user.append((k, v))
                elif pid == 0x0B:
                    b = raw[pos]
                    pos += 1
                    sid = b & 0x7F
                    shift = 7
                    while b & 0x80:
                        b = raw[pos]
                        pos += 1
                        sid |= (b & 0x7F) << shift
                        shift += 7
                    if sids is None:
                        sids = [sid]
                    else:
                        sids.append(sid)
                elif pid == 0x08 or pid == 0x03:
                    sl = (raw[pos] << 8) | raw[pos + 1]
                    pos += 2
                    st = raw[pos : pos + sl].decode()
                    pos += sl
                    if pid == 0x08:
                        rt = st
                elif pid == 0x09:
                    cl = (raw[pos] << 8) | raw[pos + 1]
                    pos += 2
                    corr = raw[pos : pos + cl]
                    pos += cl
                elif pid == 0x01:
                    pos += 1
                elif pid == 0x02:
                    pos += 4
                elif pid == 0x23:
                    log.warning("dropping PUBLISH with a topic alias (not negotiated)")
                    return
                else:
                    log.warning("dropping PUBLISH with unknown property 0x%02x", pid)
                    return
            if pos != end:
                log.warning("dropping malformed PUBLISH on %r", topic)
                return
            payload = raw[end:stop]
        except (IndexError, UnicodeDecodeError) as exc:
            log.warning("dropping malformed PUBLISH: %s", exc)
            return
        try:
            self._dispatch(topic, payload, user or None, rt, corr, sids)
        except Exception:
            log.exception("dropping message on %s: unexpected error", topic)

    # ------------------------------------------------------------------ transport hooks

    def _send(
        self,
        topic: str,
        payload: bytes,
        props: UserProps,
        response_topic: str | None,
        corr: bytes | None,
    ) -> None:
        client = self._client
        if client is None:
            raise ComNotOpenError("publish failed as binding is not open")
        qos = self._qos
        if qos == 0:
            if not self._connected:
                raise ComNotConnectedError(
                    f"publish on {topic} failed: not connected to the MQTT broker"
                )
            self._out.append(encode_publish(topic, payload, props, response_topic, corr))
        else:
            # QoS 1/2: stored until acknowledged; sent now if connected, else after reconnect
            conn = client._connection
            mid = conn._protocol.id_generator.next_id()
            pkt = encode_publish(topic, payload, props, response_topic, corr, qos, mid)
            client._persistent_storage.push_message(mid, pkt)
            if not self._connected:
                return
            self._out.append(pkt)
        if not self._flush_scheduled:
            # coalesce the packets of one loop iteration into one write (one syscall)
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_out)  # type: ignore[union-attr]

    def _flush_out(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        client = self._client
        conn = client._connection if client is not None else None
        if conn is None or conn._transport.is_closing():
            log.debug("dropping %d unsent packet(s): connection lost", len(out))
            return
        conn._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _send_subscribe(self, topic_filter: str, sub_id: int, no_local: bool = False) -> int:
        client = self._client
        if client is None:
            raise ComNotOpenError("subscribe failed as binding is not open")
        self._flush_out()  # keep the order of what we sent before
        # noLocal on a shared subscription is a protocol error: never set there
        no_local = (self._no_local or no_local) and not topic_filter.startswith("$share/")
        sub = GSubscription(topic_filter, qos=self._qos, no_local=no_local)
        mid: int = client._connection.subscribe([sub], subscription_identifier=sub_id)
        return mid

    async def _subscribe_filter(
        self, topic_filter: str, sub_id: int, no_local: bool = False
    ) -> None:
        if not self._connected:
            # restored by the resubscribe after the reconnect
            log.info("subscribe %s while disconnected: deferred to reconnect", topic_filter)
            return
        assert self._loop is not None
        fut: asyncio.Future[tuple[int, ...]] = self._loop.create_future()
        mid = self._send_subscribe(topic_filter, sub_id, no_local)
        self._suback[mid] = fut
        try:
            async with asyncio.timeout(10.0):
                codes = await fut
        except ComNotConnectedError:
            return  # restored by the resubscribe after the reconnect
        bad = [c for c in codes if c >= 0x80]
        if bad:
            raise ComError(
                f"broker refused subscription {topic_filter!r} (reason code 0x{bad[0]:02x})"
            )

    def _unsubscribe_filter(self, topic_filter: str) -> None:
        client = self._client
        if client is None or not self._connected:
            return
        self._flush_out()
        client._connection.unsubscribe(topic_filter)


def _parse_url(url: str, cfg: Config) -> tuple[str, int, ssl.SSLContext | bool, str | None]:
    try:
        u = urlsplit(url)
        port_opt = u.port
    except ValueError as exc:
        raise ConfigError("services.com.url", f"invalid url {url!r}: {exc}") from exc
    scheme = (u.scheme or "").lower()
    if scheme in ("tcp", "mqtt"):
        secure, ws, default_port = False, False, 1883
    elif scheme in ("tls", "mqtts", "ssl"):
        secure, ws, default_port = True, False, 8883
    elif scheme == "ws":
        secure, ws, default_port = False, True, 80
    elif scheme == "wss":
        secure, ws, default_port = True, True, 443
    else:
        raise ConfigError(
            "services.com.url",
            f"unsupported url scheme {u.scheme!r} in {url!r}; use tcp, mqtt, tls, mqtts, ws or wss",
        )
    host = u.hostname or "localhost"
    port = port_opt or default_port
    auth = cfg.services.com.auth
    ctx: ssl.SSLContext | bool = False
    if secure:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if not auth.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if auth.method == "tls":
            try:
                ctx.load_cert_chain(auth.cert, auth.key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    "services.com.auth.cert",
                    f"invalid or missing PEM file {auth.cert!r} / {auth.key!r}: {exc}",
                ) from exc
    ws_path = (u.path or "/mqtt") if ws else None
    if ws and u.query:
        ws_path = f"{ws_path}?{u.query}"
    return host, port, ctx, ws_path
