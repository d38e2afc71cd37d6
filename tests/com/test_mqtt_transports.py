"""URL schemes and authentication of the MQTT 5 binding against real Mosquitto brokers:
tcp/mqtt, tls/mqtts with client certificates and ``verify``, username/password,
ws/wss (through a WebSocket front of our own, since this Mosquitto build cannot
open websocket listeners)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ddastate.com.api import Action, ActionResult, Scope, SubscriptionFilter
from ddastate.com.mqtt5 import ComConnectError, Mqtt5Binding
from ddastate.config import Config, ConfigError
from ddastate.testing.mosquitto import Mosquitto, free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "dda-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        ext = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)  # fmt: skip
    return d


@pytest.fixture(scope="module")
def tls_broker(certs: Path) -> Iterator[tuple[Mosquitto, int]]:
    """A broker with a plain listener and a TLS listener requiring client certificates."""
    tls_port = free_port()
    extra = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs / 'ca.crt'}\n"
        f"certfile {certs / 'server.crt'}\nkeyfile {certs / 'server.key'}\n"
        "require_certificate true\n"
    )
    with Mosquitto(extra_config=extra) as broker:
        yield broker, tls_port


def _cfg(url: str, **auth: Any) -> Config:
    cfg = Config()
    cfg.cluster = "transport"
    cfg.services.com.url = url
    cfg.services.com.opts["connectRetryDelay"] = 50
    for k, v in auth.items():
        setattr(cfg.services.com.auth, k, v)
    return cfg.validate()


async def _roundtrip(cfg: Config) -> None:
    b = Mqtt5Binding()
    await b.open(cfg, timeout=5)
    try:
        await b.subscribe_action(
            SubscriptionFilter(Scope.STA, "ping"),
            handler=lambda awc: awc.send(ActionResult("", awc.action.params + b"!")),
        )
        res = await b.request_action(Action("ping", "1", b.identity(), b"x" * 300), Scope.STA, 5)
        assert res.data == b"x" * 300 + b"!"
    finally:
        await b.close()


@pytest.mark.parametrize("scheme", ["tcp", "mqtt"])
async def test_plain_schemes(mosquitto_session: Mosquitto, scheme: str) -> None:
    await _roundtrip(_cfg(f"{scheme}://127.0.0.1:{mosquitto_session.port}"))


@pytest.mark.parametrize("scheme", ["tls", "mqtts"])
async def test_tls_with_client_certificate_verified(
    tls_broker: tuple[Mosquitto, int], certs: Path, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))  # trust our test CA
    cfg = _cfg(
        f"{scheme}://127.0.0.1:{tls_broker[1]}",
        method="tls",
        cert=str(certs / "client.crt"),
        key=str(certs / "client.key"),
    )
    await _roundtrip(cfg)


async def test_tls_verify_false_accepts_unknown_ca(
    tls_broker: tuple[Mosquitto, int], certs: Path
) -> None:
    cfg = _cfg(
        f"tls://127.0.0.1:{tls_broker[1]}",
        method="tls",
        cert=str(certs / "client.crt"),
        key=str(certs / "client.key"),
        verify=False,
    )
    await _roundtrip(cfg)


async def test_tls_verify_true_rejects_unknown_ca(
    tls_broker: tuple[Mosquitto, int], certs: Path
) -> None:
    cfg = _cfg(
        f"tls://127.0.0.1:{tls_broker[1]}",
        method="tls",
        cert=str(certs / "client.crt"),
        key=str(certs / "client.key"),
    )
    with pytest.raises(ComConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await Mqtt5Binding().open(cfg, timeout=0.5)


async def test_tls_without_client_certificate_refused(
    tls_broker: tuple[Mosquitto, int], certs: Path
) -> None:
    cfg = _cfg(f"tls://127.0.0.1:{tls_broker[1]}", verify=False)
    with pytest.raises(ComConnectError):
        await Mqtt5Binding().open(cfg, timeout=0.5)


async def test_missing_certificate_file_is_a_config_error(
    tls_broker: tuple[Mosquitto, int],
) -> None:
    cfg = _cfg(f"tls://127.0.0.1:{tls_broker[1]}", method="tls", cert="/nope.crt", key="/nope.key")
    with pytest.raises(ConfigError, match=r"services\.com\.auth\.cert"):
        await Mqtt5Binding().open(cfg, timeout=0.5)


async def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"services\.com\.url.*scheme"):
        await Mqtt5Binding().open(_cfg("http://127.0.0.1:1"), timeout=0.5)


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    d = tmp_path_factory.mktemp("pw")
    pw = d / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "dda", "s3cret"], check=True)
    pw.chmod(0o644)
    with Mosquitto(allow_anonymous=False, extra_config=f"password_file {pw}\n") as broker:
        yield broker


async def test_username_password(password_broker: Mosquitto) -> None:
    await _roundtrip(_cfg(password_broker.url, username="dda", password="s3cret"))


@pytest.mark.parametrize(
    "auth",
    [{"username": "dda", "password": "wrong"}, {}],
    ids=["wrong-password", "anonymous"],
)
async def test_bad_credentials_refused(password_broker: Mosquitto, auth: dict[str, str]) -> None:
    with pytest.raises(ComConnectError, match="cannot connect"):
        await Mqtt5Binding().open(_cfg(password_broker.url, **auth), timeout=2)


# ----------------------------------------------------------------------------- websockets


class WsFront:
    """A WebSocket server (RFC 6455, server side) relaying to a broker's TCP port."""

    def __init__(self, broker_port: int, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.broker_port = broker_port
        self.ssl_ctx = ssl_ctx
        self.paths: list[str] = []
        self.protocols: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> WsFront:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.paths.append(head[0].split(" ")[1])
        hdrs = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)
        }
        self.protocols.append(hdrs.get("sec-websocket-protocol", ""))
        key = hdrs["sec-websocket-key"].encode()
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        ).decode()
        w.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
            ).encode()
        )
        br, bw = await asyncio.open_connection("127.0.0.1", self.broker_port)

        async def client_to_broker() -> None:
            while True:
                b0, b1 = await r.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await r.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await r.readexactly(8))
                assert b1 & 0x80, "client frames must be masked"
                mask = await r.readexactly(4)
                data = bytes(x ^ mask[i % 4] for i, x in enumerate(await r.readexactly(n)))
                if b0 & 0x0F == 0x8:
                    bw.close()
                    return
                assert b0 & 0x0F == 0x2, "MQTT goes in binary frames"
                bw.write(data)

        async def broker_to_client() -> None:
            while data := await br.read(65536):
                # split into two frames, the first a fragment, to exercise reassembly
                half = len(data) // 2 or len(data)
                for op, fin, part in ((0x2, 0, data[:half]), (0x0, 0x80, data[half:])):
                    if not part and op == 0x0:
                        part = b""
                    n = len(part)
                    hdr = bytes([fin | op])
                    hdr += bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n)
                    w.write(hdr + part)
            w.close()

        try:
            await asyncio.gather(client_to_broker(), broker_to_client())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()
            bw.close()


@pytest.fixture
async def ws_front(mosquitto_session: Mosquitto) -> AsyncIterator[WsFront]:
    front = await WsFront(mosquitto_session.port).start()
    yield front
    await front.stop()


async def test_ws_scheme(ws_front: WsFront) -> None:
    await _roundtrip(_cfg(f"ws://127.0.0.1:{ws_front.port}/mqtt"))
    assert ws_front.paths == ["/mqtt"]
    assert ws_front.protocols == ["mqtt"]


async def test_wss_scheme(mosquitto_session: Mosquitto, certs: Path) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs / "server.crt", certs / "server.key")
    front = await WsFront(mosquitto_session.port, ctx).start()
    try:
        await _roundtrip(_cfg(f"wss://127.0.0.1:{front.port}/ws", verify=False))
        assert front.paths == ["/ws"]
    finally:
        await front.stop()
