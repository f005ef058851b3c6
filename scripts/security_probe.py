"""Probe a running Prism deployment the way docs/security.md reports it.

    python scripts/security_probe.py --replica http://127.0.0.1:8081 --replica http://127.0.0.1:8082 \
        --admin-email admin@example.com --admin-password '...' --metrics-token '...' [--forwarded-for]

Sections: the production surface (status codes, headers), account enumeration (login: unknown user
vs wrong password, bodies and median timing; register: new vs existing email), a password-guessing
run spread over every replica (new connection per request, so over every worker), and how long an
access token keeps working on the *last* replica after a password change and after a logout made on
the first. With ``--forwarded-for`` the probe acts as the trusted proxy and sets X-Forwarded-For to
play many clients (the probe's address must be in GATEWAY_TRUSTED_PROXIES); without it, every
request comes from the probe's own address. The admin account is the guessing target; its password
is changed and changed back.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx

CLOSE = {"Connection": "close"}


def _headers(address: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {**CLOSE, **(extra or {})}
    if address:
        headers["X-Forwarded-For"] = address
    return headers


async def surface(client: httpx.AsyncClient, url: str, token: str | None, admin_email: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        out[f"GET {path}"] = (await client.get(url + path)).status_code
    if token:
        r = await client.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        out["GET /metrics (bearer)"] = r.status_code
    body = {"password": "violet-harbour-kettle-91"}
    new = await client.post(
        url + "/auth/register", json={**body, "email": f"probe-{uuid.uuid4().hex[:8]}@x.io"}
    )
    old = await client.post(url + "/auth/register", json={**body, "email": admin_email})
    out["POST /auth/register new"] = new.status_code
    out["POST /auth/register existing"] = old.status_code
    out["register bodies identical"] = new.content == old.content
    r = await client.get(url + "/healthz")
    out["headers"] = {
        name: r.headers.get(name)
        for name in (
            "strict-transport-security",
            "x-content-type-options",
            "x-frame-options",
            "referrer-policy",
            "content-security-policy",
        )
    }
    return out


async def enumeration(client: httpx.AsyncClient, url: str, email: str, forwarded: bool) -> dict[str, Any]:
    rounds = 15 if forwarded else 4  # from one address, stay under the per-(account, address) limit
    times: dict[str, list[float]] = {"unknown user": [], "wrong password": []}
    bodies: dict[str, set[bytes]] = {"unknown user": set(), "wrong password": set()}
    for i in range(rounds):
        for label, account in (("unknown user", f"nobody-{i}@example.com"), ("wrong password", email)):
            address = f"192.0.2.{i + 1}" if forwarded else None
            started = time.perf_counter()
            r = await client.post(
                url + "/auth/login",
                json={"email": account, "password": f"wrong-password-{i}"},
                headers=_headers(address),
            )
            times[label].append((time.perf_counter() - started) * 1000)
            bodies[label].add(f"{r.status_code} ".encode() + r.content)
    return {
        **{f"{label} median ms": round(statistics.median(v), 1) for label, v in times.items()},
        "answers": {label: sorted(b.decode() for b in v) for label, v in bodies.items()},
    }


async def guessing(
    client: httpx.AsyncClient, urls: list[str], email: str, password: str, forwarded: bool, guesses: int
) -> dict[str, Any]:
    attacker = "198.51.100.66" if forwarded else None
    results = await asyncio.gather(
        *(
            client.post(
                urls[i % len(urls)] + "/auth/login",
                json={"email": email, "password": f"guess-{i}-{uuid.uuid4().hex[:6]}"},
                headers=_headers(attacker),
            )
            for i in range(guesses)
        )
    )
    statuses = [r.status_code for r in results]
    owner = await client.post(
        urls[-1] + "/auth/login",
        json={"email": email, "password": password},
        headers=_headers("203.0.113.200" if forwarded else None),
    )
    return {
        "guesses sent": guesses,
        "checked (401)": statuses.count(401),
        "refused (429)": statuses.count(429),
        "other": sorted(set(statuses) - {401, 429}),
        "owner from another address": owner.status_code,
    }


async def _until_refused(client: httpx.AsyncClient, url: str, token: str, limit_s: float = 60.0) -> float:
    """Seconds from the change to the last answer that still accepted the token, on ``url``'s
    workers (new connection per request); done after 30 refusals in a row."""
    started = time.monotonic()
    last_accepted = 0.0
    refused_in_a_row = 0
    while time.monotonic() - started < limit_s and refused_in_a_row < 30:
        r = await client.get(url + "/users/me", headers=_headers(None, {"Authorization": f"Bearer {token}"}))
        if r.status_code == 401:
            refused_in_a_row += 1
        else:
            refused_in_a_row = 0
            last_accepted = time.monotonic() - started
        await asyncio.sleep(0.02)
    return round(last_accepted, 2) if refused_in_a_row >= 30 else float("inf")


async def revocation(
    client: httpx.AsyncClient, urls: list[str], email: str, password: str, forwarded: bool
) -> dict[str, Any]:
    first, last = urls[0], urls[-1]
    address = "203.0.113.201" if forwarded else None

    async def login(pw: str) -> dict[str, Any]:
        r = await client.post(
            first + "/auth/login", json={"email": email, "password": pw}, headers=_headers(address)
        )
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def warm(token: str) -> None:
        """Until every worker of every replica accepts the token (30 in a row each): its user and
        session are cached everywhere, and no stale entry from a previous step is left."""
        for url in urls:
            accepted_in_a_row = 0
            deadline = time.monotonic() + 60
            while accepted_in_a_row < 30 and time.monotonic() < deadline:
                r = await client.get(
                    url + "/users/me", headers=_headers(None, {"Authorization": f"Bearer {token}"})
                )
                accepted_in_a_row = accepted_in_a_row + 1 if r.status_code == 200 else 0
                await asyncio.sleep(0.02)

    out: dict[str, Any] = {}
    temporary = "probe-" + uuid.uuid4().hex[:16]
    session = await login(password)
    await warm(session["access_token"])
    r = await client.post(
        first + "/auth/password",
        json={"current_password": password, "new_password": temporary},
        headers=_headers(address, {"Authorization": f"Bearer {session['access_token']}"}),
    )
    r.raise_for_status()
    out["password change: old token last accepted on the last replica at s"] = await _until_refused(
        client, last, session["access_token"]
    )
    restored = await client.post(
        first + "/auth/password",
        json={"current_password": temporary, "new_password": password},
        headers=_headers(address, {"Authorization": f"Bearer {r.json()['access_token']}"}),
    )
    restored.raise_for_status()
    session = await login(password)
    await warm(session["access_token"])
    await client.post(
        first + "/auth/logout",
        headers=_headers(address, {"Authorization": f"Bearer {session['access_token']}"}),
    )
    out["logout: token last accepted on the last replica at s"] = await _until_refused(
        client, last, session["access_token"]
    )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replica", action="append", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--metrics-token")
    parser.add_argument("--forwarded-for", action="store_true")
    parser.add_argument("--guesses", type=int, default=60)
    args = parser.parse_args()
    urls = [u.rstrip("/") for u in args.replica]
    async with httpx.AsyncClient(timeout=60) as client:
        report = {
            "surface": await surface(client, urls[0], args.metrics_token, args.admin_email),
            "enumeration": await enumeration(client, urls[0], args.admin_email, args.forwarded_for),
            "guessing": await guessing(
                client, urls, args.admin_email, args.admin_password, args.forwarded_for, args.guesses
            ),
            "revocation": await revocation(
                client, urls, args.admin_email, args.admin_password, args.forwarded_for
            ),
        }
    for section, values in report.items():
        print(f"## {section}")
        for key, value in values.items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
