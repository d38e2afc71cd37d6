"""gRPC addresses as written in a DDA configuration: ``host:port``, ``:port`` or ``unix:path``."""

from __future__ import annotations

from dataclasses import dataclass


class AddressError(ValueError):
    """An address that is neither ``host:port``, ``:port`` nor ``unix:path``."""


@dataclass(frozen=True, slots=True)
class GrpcAddress:
    """A parsed gRPC address.

    ``unix`` is True for a Unix domain socket (``path`` set), else ``host`` and ``port``
    are set; an empty host means all interfaces when listening and localhost when dialing.
    """

    text: str
    unix: bool
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def bind_target(self) -> str:
        """The target string for ``grpc.aio.Server.add_insecure_port``."""
        if self.unix:
            return f"unix:{self.path}"
        host = self.host or "[::]"
        return f"{_bracket(host)}:{self.port}"

    @property
    def dial_target(self) -> str:
        """The target string for a client channel."""
        if self.unix:
            return f"unix:{self.path}"
        host = self.host
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = "localhost"
        return f"{_bracket(host)}:{self.port}"

    def with_port(self, port: int) -> GrpcAddress:
        """The same address with another TCP port (used after binding port 0)."""
        return GrpcAddress(self.text, self.unix, self.host, port, self.path)


def _bracket(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def parse_address(text: str) -> GrpcAddress:
    """Parse ``host:port``, ``:port``, ``[v6]:port``, ``unix:path`` or ``unix://path``.

    Raises AddressError with a message naming the address when it cannot be used.
    """
    raw = text.strip()
    if not raw:
        raise AddressError("empty gRPC address (expected host:port, :port or unix:path)")
    if raw.startswith("unix:"):
        path = raw[len("unix://") :] if raw.startswith("unix://") else raw[len("unix:") :]
        if raw.startswith("unix://") and not path.startswith("/"):
            path = "/" + path
        if not path:
            raise AddressError(f"gRPC address {text!r}: unix socket path is empty")
        return GrpcAddress(raw, True, path=path)
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        raise AddressError(f"gRPC address {text!r}: expected host:port, :port or unix:path")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"gRPC address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise AddressError(f"gRPC address {text!r}: port {port} is out of range 0..65535")
    return GrpcAddress(raw, False, host=host, port=port)
