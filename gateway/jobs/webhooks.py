"""Completion webhooks: ``POST`` of the job's summary to the URL given at submit, signed with
``GATEWAY_JOBS_WEBHOOK_SECRET``: ``X-Prism-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`` (verify the HMAC and that ``t`` is recent). Three attempts with backoff; a failed
delivery is logged, never fails the job (clients can always poll)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
import structlog

log = structlog.get_logger("gateway.jobs")


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSender:
    def __init__(self, *, secret: str | None, timeout_s: float = 10.0, attempts: int = 3) -> None:
        self._secret = secret.encode() if secret else None
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver(self, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, url: str, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        headers = {"content-type": "application/json", "user-agent": "prism-jobs"}
        for attempt in range(1, self._attempts + 1):
            if self._secret is not None:
                headers["x-prism-signature"] = signature(self._secret, body, int(time.time()))
            try:
                response = await self._client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    log.info("job_webhook_delivered", job_id=payload.get("id"), status=response.status_code)
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning("job_webhook_failed", job_id=payload.get("id"), attempt=attempt, error=problem)
            if attempt < self._attempts:
                await asyncio.sleep(0.5 * 2**attempt)

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for the deliveries under way (a Celery worker's loop runs only during a task)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        await self.flush(10.0)
        await self._client.aclose()
