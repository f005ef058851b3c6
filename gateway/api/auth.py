"""Auth routes. Who may call: register/login/refresh/password-reset are public (throttled per
client address, cluster-wide); the rest need a user; the reset issue route needs an admin.

Token responses carry ``Cache-Control: no-store`` (added for every ``/auth/`` answer by
``gateway.security.headers``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import AccountsDep, AdminDep, SessionDep, SessionUserDep, UserDep
from gateway.errors import InvalidRequest
from gateway.schemas.auth import LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, UserOut
from gateway.services.accounts import Accounts
from gateway.services.auth import TokenPair
from gateway.services.users import get_user

router = APIRouter(tags=["auth"])

REGISTER_ACCEPTED = (
    "If this address can be registered, the account is ready: sign in with the password you chose."
)


class RegisterAccepted(BaseModel):
    status: str = "accepted"
    message: str = REGISTER_ACCEPTED


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class PasswordResetIssued(BaseModel):
    reset_token: str
    expires_in: int


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=4096)
    new_password: str = Field(max_length=1024)


def client_address(request: Request, accounts: Accounts) -> str | None:
    """The caller's address: the peer, or ``X-Forwarded-For`` when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    return accounts.addresses.resolve(peer=peer, forwarded_for=request.headers.get("x-forwarded-for"))


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/register", status_code=202, response_model=RegisterAccepted)
async def register(
    request: Request, body: RegisterRequest, accounts: AccountsDep, session: SessionDep
) -> RegisterAccepted:
    """Public while registration is enabled (``GATEWAY_REGISTRATION_OPEN``; closed by default in
    production: 403). The same 202 for a new and an already registered email."""
    await accounts.auth.register(
        session, email=body.email, password=body.password, ip=client_address(request, accounts)
    )
    return RegisterAccepted()


async def _credentials(request: Request) -> tuple[str, str]:
    """JSON ``{email, password}`` or the OAuth2 password form (``username``/``password``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidRequest("username and password are required", param="username")
        return username, password
    try:
        body = LoginRequest.model_validate_json(await request.body())
    except ValueError as exc:
        raise InvalidRequest("Body must be {email, password}", param="email") from exc
    return body.email, body.password


@router.post(
    "/auth/login",
    response_model=TokenResponse,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": LoginRequest.model_json_schema()},
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                        "required": ["username", "password"],
                    }
                },
            }
        }
    },
)
async def login(request: Request, accounts: AccountsDep, session: SessionDep) -> TokenResponse:
    """Public, throttled per account and per IP (429 with Retry-After)."""
    email, password = await _credentials(request)
    if len(email) > 320 or len(password) > 1024:
        raise InvalidRequest("Credentials too long")
    ip = client_address(request, accounts)
    return _tokens(await accounts.auth.login(session, email=email, password=password, ip=ip))


@router.post("/auth/refresh", response_model=TokenResponse)
async def refresh(
    request: Request, body: RefreshRequest, accounts: AccountsDep, session: SessionDep
) -> TokenResponse:
    """Public: the refresh token is the credential. Rotates it; a reused token revokes its family,
    except the token rotated moments ago (``GATEWAY_REFRESH_GRACE_S``: a second tab), which gets a
    sibling pair."""
    ip = client_address(request, accounts)
    return _tokens(await accounts.auth.refresh(session, refresh_token=body.refresh_token, ip=ip))


@router.post("/auth/logout", status_code=204)
async def logout(principal: SessionUserDep, accounts: AccountsDep, session: SessionDep) -> Response:
    """A signed-in user (JWT): revokes this login session's refresh-token family."""
    await accounts.auth.logout(session, principal=principal)
    return Response(status_code=204)


@router.post("/auth/logout-all", status_code=204)
async def logout_all(principal: SessionUserDep, accounts: AccountsDep, session: SessionDep) -> Response:
    """A signed-in user (JWT): revokes every session and every access token already issued."""
    await accounts.auth.logout_all(session, principal=principal)
    return Response(status_code=204)


@router.post("/auth/password", response_model=TokenResponse)
async def change_password(
    request: Request,
    body: ChangePasswordRequest,
    principal: SessionUserDep,
    accounts: AccountsDep,
    session: SessionDep,
) -> TokenResponse:
    """A signed-in user (JWT): needs the current password. Every session and access token of the
    user ends (this one too); the answer is a fresh session."""
    pair = await accounts.auth.change_password(
        session,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        ip=client_address(request, accounts),
    )
    return _tokens(pair)


@router.post("/admin/users/{user_id}/password-reset", response_model=PasswordResetIssued, status_code=201)
async def issue_password_reset(
    user_id: str, principal: AdminDep, accounts: AccountsDep, session: SessionDep
) -> PasswordResetIssued:
    """Admin: lock the user's password and sessions now and get a one-time reset token (valid
    ``GATEWAY_PASSWORD_RESET_TTL_S``) to hand to the user out of band."""
    token, ttl = await accounts.auth.admin_reset(session, actor=principal, user_id=user_id)
    return PasswordResetIssued(reset_token=token, expires_in=ttl)


@router.post("/auth/password-reset", status_code=204)
async def reset_password(
    request: Request, body: PasswordResetRequest, accounts: AccountsDep, session: SessionDep
) -> Response:
    """Public: the reset token is the credential; it works once. 400 ``invalid_reset_token`` for any
    bad, used or expired token."""
    await accounts.auth.reset_password(
        session, token=body.token, new_password=body.new_password, ip=client_address(request, accounts)
    )
    return Response(status_code=204)


@router.get("/users/me", response_model=UserOut)
async def me(principal: UserDep, session: SessionDep) -> UserOut:
    """Any signed-in user (JWT or API key)."""
    assert principal.user_id is not None
    return UserOut.model_validate(await get_user(session, user_id=principal.user_id))
