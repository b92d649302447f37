"""The gateway's connection pool to the services: httpx's requests and errors over aiohttp's pool.

httpcore's pool polls every pooled socket on each request and on each answer's close, and sets up anyio locks and
events for each: in front of a trivial upstream it cost the gateway 1.4 ms of CPU a proxied read at one client and
2.5 ms at 32. aiohttp keeps its idle connections in a deque per host and parses in C: about 0.9 ms at both.
The rest of the gateway still speaks httpx (requests, responses, errors), so the proxy, the breakers and the 360
view read failures as they did; this module is where aiohttp's errors become httpx's, each as what it means:
refused → `ConnectError`, no connection in time → `ConnectTimeout`, no answer in time → `ReadTimeout`, closed or
garbled mid-answer → `RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from yarl import URL

KEEPALIVE_SECONDS = 4.0
"""An idle connection is dropped after this long: under uvicorn's 5 s, so the gateway lets go of a connection before
the service closes it under a request."""

NOT_FORWARDED = frozenset({"transfer-encoding", "content-length"})
"""aiohttp frames the body itself (chunked for a stream passed through, sized for bytes)."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` connections in all; a request waits for one up to its `pool` timeout."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """Made on the first request, inside the running loop, as aiohttp wants."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # shared by every caller: keeps nobody's cookies
                auto_decompress=False,  # the answer goes on as the service sent it
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in NOT_FORWARDED]
        body: bytes | httpx.AsyncByteStream | None = (
            request.content or None if isinstance(request.stream, httpx.ByteStream) else request.stream  # type: ignore[assignment]
        )
        with _as_httpx(request):
            answer = await self._open().request(
                request.method,
                URL(str(request.url), encoded=True),  # the path exactly as given: `%2F` stays `%2F`
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            )
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=_Answer(answer, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Answer(httpx.AsyncByteStream):
    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self.answer = answer
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self.request):
            async for chunk in self.answer.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        """Back to the pool when read to its end; closed otherwise, since the rest of it would follow."""
        self.answer.release()


@contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # the `connect` (pool wait and connect) or `sock_connect` bound
        raise httpx.ConnectTimeout(str(exc) or "timed out connecting", request=request) from exc
    except (TimeoutError, aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out waiting for the answer", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientOSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__, request=request) from exc
