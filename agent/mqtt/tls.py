"""The one TLS client context both the MQTT link and ``remotair doctor`` connect with.

Built in one place so that what ``doctor`` checks is exactly what the agent will present: the
same CA bundle (or the system's), the same client certificate and key.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Protocol

__all__ = ["TlsFiles", "client_context"]


class TlsFiles(Protocol):
    """The TLS settings (three files and the ALPN protocol), whichever config object holds them."""

    @property
    def ca(self) -> Path | None: ...
    @property
    def cert(self) -> Path | None: ...
    @property
    def key(self) -> Path | None: ...
    @property
    def alpn(self) -> str | None: ...


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    """A verifying client context for ``tls``.

    Raises ``OSError`` or ``ssl.SSLError`` when a file cannot be read or the key does not match
    the certificate; each caller words that for its own audience. A certificate without a
    separate key file is loaded as a PEM that holds both.
    """
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca is not None else None)
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key is not None else None)
    if tls.alpn:
        context.set_alpn_protocols([tls.alpn])
    return context
