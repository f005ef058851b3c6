"""The HTTP clients every upstream provider shares: opened on first use, closed once by the lifespan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.providers.wire_http import WireHTTP

if TYPE_CHECKING:
    import openai


class UpstreamClients:
    """The lean HTTP pool of the wire adapters (``wire_http``) and one aiohttp-backed ``openai``
    client (LangChain's ``ChatOpenAI``), both with pooled keep-alive connections; each is created
    only if a configured model uses it."""

    def __init__(self, *, connect_s: float = 5.0, max_connections: int = 1000) -> None:
        self._connect_s = connect_s
        self._max_connections = max_connections
        self._openai: openai.DefaultAioHttpClient | None = None
        self._wire: WireHTTP | None = None

    @property
    def wire(self) -> WireHTTP:
        if self._wire is None:
            self._wire = WireHTTP(connect_s=self._connect_s, max_connections=self._max_connections)
        return self._wire

    @property
    def openai_client(self) -> openai.DefaultAioHttpClient:
        if self._openai is None:
            import openai  # only for ``client: langchain`` models

            self._openai = openai.DefaultAioHttpClient(
                timeout=openai.Timeout(120.0, connect=self._connect_s),
                limits=openai.DEFAULT_CONNECTION_LIMITS,
            )
        return self._openai

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
            self._wire = None
        if self._openai is not None:
            await self._openai.aclose()
            self._openai = None
