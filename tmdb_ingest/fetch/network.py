"""The network as the platform defines it: proxies from the environment, the system's trust store.

:func:`proxy_for` names the proxy a URL goes through, read from ``HTTPS_PROXY``,
``HTTP_PROXY`` and ``NO_PROXY`` (the lower-case forms win, as in curl, requests and
botocore), so that TMDB is reached the way our own S3 calls (botocore) reach S3. A
``NO_PROXY`` entry matches a host and its subdomains (``example.com``, ``.example.com``),
a ``host:port``, an IP address or a network (``10.0.0.0/8``); ``*`` bypasses every proxy.
aiohttp's ``trust_env`` is not used: it matches ``NO_PROXY`` on the host alone (a
``host:port`` entry never matches) and looks the proxy up again in a thread per request.

:func:`ssl_context` is the system's trust store as OpenSSL finds it when called
(``SSL_CERT_FILE``, ``SSL_CERT_DIR``), not when aiohttp was imported.

:func:`describe_client_error` turns aiohttp's TLS and proxy errors into one-line reasons
that name the certificate's problem or the proxy (``host:port``, never its credentials).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:  # imported where used: docs/configuration.md's renderer (the CLI's
    import aiohttp  # --help) reads NETWORK_DOC and must stay light

__all__ = ["NETWORK_DOC", "Proxy", "describe_client_error", "proxy_for", "ssl_context"]


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward proxy: its URL without credentials, and the variable that named it."""

    url: str
    variable: str
    headers: Mapping[str, str] = field(default_factory=dict)  # Proxy-Authorization, if any

    @property
    def name(self) -> str:
        """``host:port (from HTTPS_PROXY)``: safe in a message (no credentials)."""
        url = urlsplit(self.url)
        return f"{url.hostname}:{url.port or _DEFAULT_PORTS[url.scheme]} (from {self.variable})"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The value of ``name`` (lower case first, as urllib does) and which spelling held it.

    A lower-case variable set empty turns the proxy off even when the upper-case one is set.
    """
    lower, upper = name.lower(), name.upper()
    if lower in environ:
        return (environ[lower], lower) if environ[lower] else None
    # Under CGI, HTTP_PROXY can come from a client's "Proxy:" header (httpoxy).
    if upper == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
        return None
    value = environ.get(upper)
    return (value, upper) if value else None


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host`` (or ``host:port``), as curl and requests read it."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        name, sep, tail = entry.rpartition(":")
        if sep and tail.isdigit() and (name.count(":") == 0 or name.endswith("]")):
            entry, entry_port = name, int(tail)
        entry = entry.strip("[]").lstrip(".")
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == entry or host.endswith("." + entry):
            return True
    return False


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the environment names for ``url``, or None (no proxy, or ``NO_PROXY``).

    ``https://`` URLs use ``HTTPS_PROXY``, ``http://`` ones ``HTTP_PROXY``; ``ALL_PROXY``
    is not read (botocore does not read it either). A ``user:password@`` in the proxy URL
    becomes a ``Proxy-Authorization`` header and is dropped from :attr:`Proxy.url`.
    """
    env = os.environ if environ is None else environ
    target = urlsplit(url)
    if target.scheme not in _DEFAULT_PORTS or not target.hostname:
        return None
    found = _variable(env, f"{target.scheme}_proxy")
    if found is None:
        return None
    no_proxy = _variable(env, "no_proxy")
    port = target.port or _DEFAULT_PORTS[target.scheme]
    if no_proxy is not None and _bypassed(target.hostname, port, no_proxy[0]):
        return None
    value, variable = found
    proxy = urlsplit(value if "://" in value else f"http://{value}")
    headers: dict[str, str] = {}
    if proxy.username is not None:
        user, password = unquote(proxy.username), unquote(proxy.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Proxy-Authorization"] = f"Basic {token}"
    netloc = proxy.netloc.rpartition("@")[2]
    return Proxy(f"{proxy.scheme}://{netloc}", variable, headers)


def ssl_context() -> ssl.SSLContext:
    """A verifying client context over the trust store OpenSSL finds now.

    aiohttp builds its default context once, at import; this one reads ``SSL_CERT_FILE``
    and ``SSL_CERT_DIR`` when a session is made, so the environment of the run applies.
    """
    return ssl.create_default_context()


def describe_client_error(exc: aiohttp.ClientError, proxy: Proxy | None) -> tuple[str, str] | None:
    """A TLS or proxy failure as (one-line reason, what to check), or None for other errors.

    Never holds a URL's query or a proxy's credentials: only host:port, status codes and
    OpenSSL's own words.
    """
    import aiohttp

    proxy_hint = f"{proxy.variable} and NO_PROXY" if proxy is not None else "HTTPS_PROXY"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None)
        detail = detail or type(cert).__name__
        return (
            f"certificate verify failed ({detail}) for {exc.host}:{exc.port}",
            "the trust store (SSL_CERT_FILE, SSL_CERT_DIR)",
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        where = proxy.name if proxy is not None else f"{exc.host}:{exc.port}"
        return f"the proxy {where} could not be reached ({_os_reason(exc)})", proxy_hint
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        where = proxy.name if proxy is not None else "in between"
        return f"the proxy {where} answered HTTP {exc.status} {exc.message}".rstrip(), proxy_hint
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return (
            f"TLS handshake with {exc.host}:{exc.port} failed ({_os_reason(exc)})",
            "that the server speaks TLS (https://) on that port",
        )
    return None


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    """The OS or OpenSSL error's own words (``Connect call failed``...), without addresses."""
    error = exc.os_error
    text = getattr(error, "strerror", None) or getattr(error, "reason", None)
    return str(text) if text else type(error).__name__


NETWORK_DOC: tuple[str, ...] = (
    "## Network",
    "",
    "TMDB is reached the way the platform says, as curl, requests and botocore (so our",
    "own S3 calls) reach their hosts:",
    "",
    "- **Proxies**: `HTTPS_PROXY` for `https://` URLs, `HTTP_PROXY` for `http://` ones,",
    "  and `NO_PROXY` for the hosts that go direct; the lower-case forms win when both are",
    "  set, and a lower-case variable set empty turns the proxy off. A `NO_PROXY` entry is",
    "  a host with its subdomains (`example.com` or `.example.com`), a `host:port`, an IP",
    "  address, a network (`10.0.0.0/8`), or `*` for every host. `user:password@` in the",
    "  proxy URL is sent as `Proxy-Authorization` and never shown. Over HTTPS the proxy",
    "  sees `CONNECT api.themoviedb.org:443`, never the key. S3 (botocore) reads the same",
    "  variables: put the S3 endpoint in `NO_PROXY` to send it direct (with a VPC endpoint,",
    "  say). `ALL_PROXY` is not read, by botocore either.",
    "- **Trust store**: HTTPS is verified against the system's CAs as OpenSSL finds them",
    "  when the run starts: `SSL_CERT_FILE` (a PEM bundle) or `SSL_CERT_DIR` name a private",
    "  CA, e.g. a proxy that inspects TLS. To try one locally, the emulator serves HTTPS:",
    "  `tmdb-ingest emulate --tls-cert server.pem --tls-key server-key.pem`.",
    "- **The first request**: before any id, `GET {tmdb_url}/configuration` proves that",
    "  `--tmdb-url` is TMDB's v3 API and takes the key (a 200 JSON object with `images`). It",
    "  counts against `--rate` and in the summary's `requests`. Anything else stops the run",
    "  with exit 1 and one line naming the URL and what answered: a 404 (a wrong path such",
    "  as `/4`), a certificate that does not verify, a proxy that refuses or fails (by",
    "  `host:port` and the variable that named it), or no answer at all.",
)
"""The "Network" section of docs/configuration.md."""
