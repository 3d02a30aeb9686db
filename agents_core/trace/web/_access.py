"""Who may use the trace view: the ``Host`` a request names, and the token it carries.

Pure functions (standard library only); the middlewares that apply them are in ``app.py``::

    rule = HostRule.for_bind("127.0.0.1", 8000)
    rule.refusal(["localhost:8000"], scheme="http", local_port=8000)   # None: accepted
    rule.refusal(["evil.example:8000"], scheme="http", local_port=8000)  # (421, "…")

Design notes. *DNS rebinding*: a page of ``evil.example`` can make its own name resolve to
``127.0.0.1`` and then read ``http://evil.example:8000/`` as a same-origin page, which is the
trace view on this laptop; the one thing that gives it away is the ``Host`` header, which the
browser sets from the name. So a loopback bind answers only for the address it listens on and
its loopback names (``localhost``), with its port. A wildcard bind (``0.0.0.0``, ``::``) has no
one name to check against (the machine's names and addresses are all right); there, and on any
other address that is not loopback, the token is what keeps others out: a rebinding page knows
neither the token nor the cookie, which the browser keeps under the real name.

*Status codes*: a request without exactly one well-formed ``Host`` is answered 400, which
RFC 9112 (section 3.2) requires; a well-formed ``Host`` that names another server 421
(Misdirected Request), which RFC 9110 (section 15.5.20) defines for a server "unwilling to
produce an authoritative response for the target URI".

*Tokens* are compared with ``hmac.compare_digest`` (no early exit on the first differing byte),
and are limited to characters a URL, a cookie and a header carry unchanged.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = [
    "COOKIE",
    "QUERY_PARAMETER",
    "HostRule",
    "bearer",
    "check_token",
    "is_loopback",
    "matches",
    "parse_host",
    "split_query",
]

#: The cookie that holds the token once a browser came in with ``?token=``.
COOKIE = "agents_core_token"
#: The query parameter of the URL ``agents-core serve`` prints.
QUERY_PARAMETER = "token"
#: Addresses that listen on every interface.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME = re.compile(r"[a-z0-9_][a-z0-9._-]{0,252}")
_PORT = re.compile(r"[0-9]{1,5}")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is a loopback address, or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    """``token``, if it can be one: 16 to 256 characters of ``A-Z a-z 0-9 . _ ~ -`` (what a URL,
    a cookie and a header carry unchanged; ``secrets.token_urlsafe`` makes such). Else
    ``ValueError``, which never quotes it."""
    if _TOKEN.fullmatch(token) is None:
        raise ValueError(
            "a token is 16 to 256 characters of letters, digits and . _ ~ - "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
        )
    return token


def parse_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header as (host, port), the host lower-cased (an IP address in its usual form,
    IPv6 without brackets), the port ``None`` when absent; ``None`` if it is not well-formed."""
    if value.startswith("["):
        address, bracket, rest = value[1:].partition("]")
        try:
            host = str(ipaddress.IPv6Address(address)) if bracket else None
        except ValueError:
            host = None
        if host is None or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = value.partition(":")
        host = name.lower()
        if _NAME.fullmatch(host) is None:
            return None
        port_text = port_text_or_empty if colon else None
        with contextlib.suppress(ValueError):  # else a name
            host = str(ipaddress.IPv4Address(host))
    if port_text is None:
        return host, None
    if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        return None
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class HostRule:
    """The ``Host`` values a server bound to one address answers for.

    ``names``: the host names and addresses accepted, ``None`` for any (a wildcard bind).
    ``port``: the port accepted, 0 for the port each connection arrived on (the server chose).
    """

    names: frozenset[str] | None
    port: int

    @classmethod
    def for_bind(cls, host: str, port: int) -> HostRule:
        """The rule for a server listening on ``host`` (as given to it) and ``port``."""
        bound = host.strip("[]").lower()
        if bound in _WILDCARDS:
            return cls(None, port)
        if bound == "localhost":  # the server listens on whatever localhost resolves to
            return cls(frozenset({"localhost", "127.0.0.1", "::1"}), port)
        try:
            address = ipaddress.ip_address(bound)
        except ValueError:  # a name: it is what the clients use
            return cls(frozenset({bound}), port)
        names = {str(address)}
        if address.is_loopback:
            names.add("localhost")
        return cls(frozenset(names), port)

    def refusal(
        self, values: list[str], *, scheme: str, local_port: int | None
    ) -> tuple[int, str] | None:
        """``None`` if a request with these ``Host`` header values is for this server, else the
        status and message to answer with. ``local_port``: the port the connection arrived on."""
        parsed = parse_host(values[0]) if len(values) == 1 else None
        if parsed is None:
            return 400, "bad request: no valid host header"
        host, port = parsed
        wanted = self.port or local_port
        if port is None:
            port = _DEFAULT_PORTS.get(scheme)
        if (self.names is not None and host not in self.names) or port != wanted:
            return 421, (
                "misdirected request: this trace view does not answer for that host "
                "(open the address agents-core serve printed)"
            )
        return None


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if it is one."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def matches(candidate: str | None, token: bytes) -> bool:
    """Whether ``candidate`` is the token, compared in constant time."""
    if candidate is None:
        return False
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), token)


def split_query(raw_path: bytes, query_string: bytes) -> tuple[list[str], str]:
    """The values of ``?token=`` in a request, and where to send a browser that came in with
    it: the same path and query without it (the other parameters byte for byte), and never a
    ``//host`` that a browser would take for another site."""
    path = "/" + raw_path.decode("latin-1").lstrip("/\\")
    tokens: list[str] = []
    kept: list[str] = []
    for part in query_string.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if unquote_plus(name) == QUERY_PARAMETER:
            tokens.append(unquote_plus(value, errors="replace"))
        elif part:
            kept.append(part)
    return tokens, path + ("?" + "&".join(kept) if kept else "")
