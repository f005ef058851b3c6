"""Admin view and control of quotas: ``/admin/quotas/key:<id>`` and ``/admin/quotas/user:<id>``.

GET shows current usage against every limit (RPM, TPM, tokens per day, monthly budget) from the
live backend; PATCH changes a key's RPM/TPM override or a user's tier, effective at once on this
replica (the authenticator's cache entry is dropped) and within ``api_key_cache_ttl_s`` elsewhere.
The use cases are ``gateway/services/quotas.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.api.responses import OrjsonResponse
from gateway.deps import AccountsDep, AdminDep, AppStateDep, SessionDep
from gateway.errors import InvalidRequest, ServiceUnavailable
from gateway.schemas.quotas import QuotaPatch
from gateway.services.quotas import ScopeKind, quota_report, quota_subject, update_quota

router = APIRouter(prefix="/admin/quotas", tags=["admin"])


def _split(scope: str) -> tuple[ScopeKind, str]:
    kind, _, ident = scope.partition(":")
    if kind not in ("key", "user") or not ident:
        raise InvalidRequest("scope must be key:<api key id> or user:<user id>", param="scope")
    return ("key" if kind == "key" else "user"), ident


async def _report(state: AppStateDep, session: SessionDep, kind: ScopeKind, ident: str) -> dict[str, Any]:
    subject = await quota_subject(session, kind=kind, ident=ident)
    if state.backends is None:
        raise ServiceUnavailable("quotas are not configured")
    return await quota_report(
        state.backends.quotas,
        quotas=state.holder.current.config.quotas,
        subject=subject,
        kind=kind,
        ident=ident,
    )


@router.get("/{scope}")
async def get_quota(scope: str, state: AppStateDep, session: SessionDep, _: AdminDep) -> OrjsonResponse:
    kind, ident = _split(scope)
    return OrjsonResponse(await _report(state, session, kind, ident))


@router.patch("/{scope}")
async def patch_quota(
    scope: str, body: QuotaPatch, state: AppStateDep, session: SessionDep, accounts: AccountsDep, _: AdminDep
) -> OrjsonResponse:
    kind, ident = _split(scope)
    await update_quota(
        session,
        kind=kind,
        ident=ident,
        changes=body.model_dump(exclude_unset=True),
        quotas=state.holder.current.config.quotas,
        authenticator=accounts.authenticator,
    )
    return OrjsonResponse(await _report(state, session, kind, ident))
