"""A loopback TCP proxy in front of a broker that closes the connection when the client
publishes to a forbidden topic: what AWS IoT Core does to an MQTT 3.1.1 client whose policy
denies the publish (3.1.1 has no negative PUBACK). Mosquitto acknowledges a denied 3.1.1
publish and drops it silently, so it cannot stand in for that."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["CuttingProxy"]

_PUBLISH = 3


class CuttingProxy:
    """Listens on a free loopback port; ``cuts`` counts the connections it closed."""

    def __init__(self, upstream: tuple[str, int], forbidden: Callable[[str], bool]) -> None:
        self.upstream = upstream
        self.forbidden = forbidden
        self.cuts = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._server.getsockname()[:2]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            broker.settimeout(None)
            with self._lock:
                self._open += [client, broker]
            threading.Thread(target=self._inspect, args=(client, broker), daemon=True).start()
            threading.Thread(target=self._copy, args=(broker, client), daemon=True).start()

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        self._cut(source, sink)

    def _inspect(self, client: socket.socket, broker: socket.socket) -> None:
        """Forward the client's packets one by one; cut at a PUBLISH to a forbidden topic."""
        buffer = b""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                buffer += data
                while (packet := _one_packet(buffer)) is not None:
                    buffer = buffer[len(packet) :]
                    if _publish_topic(packet) is not None and self.forbidden(
                        str(_publish_topic(packet))
                    ):
                        with self._lock:
                            self.cuts += 1
                        self._cut(client, broker)
                        return
                    broker.sendall(packet)
        self._cut(client, broker)

    @staticmethod
    def _cut(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def _one_packet(buffer: bytes) -> bytes | None:
    """The first complete MQTT control packet in ``buffer`` (fixed header + remaining length)."""
    length, multiplier, index = 0, 1, 1
    while True:
        if index >= len(buffer):
            return None
        byte = buffer[index]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
    end = index + length
    return buffer[:end] if len(buffer) >= end else None


def _publish_topic(packet: bytes) -> str | None:
    if packet[0] >> 4 != _PUBLISH:
        return None
    index = 1
    while packet[index] & 0x80:
        index += 1
    index += 1
    size = int.from_bytes(packet[index : index + 2], "big")
    return packet[index + 2 : index + 2 + size].decode("utf-8", "replace")
