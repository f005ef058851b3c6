"""Auth routes. Who may call: register/login/refresh are public (throttled); the rest need a user."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.db.repositories.users import UserRepository
from gateway.deps import AccountsDep, SessionDep, SessionUserDep, UserDep
from gateway.errors import InvalidRequest
from gateway.schemas.auth import LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, UserOut
from gateway.services.auth import TokenPair

router = APIRouter(tags=["auth"])


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/register", status_code=201, response_model=UserOut)
async def register(body: RegisterRequest, accounts: AccountsDep, session: SessionDep) -> UserOut:
    """Public while ``registration_open``; otherwise 403."""
    user = await accounts.auth.register(session, email=body.email, password=body.password)
    return UserOut.model_validate(user)


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
    ip = request.client.host if request.client else None
    return _tokens(await accounts.auth.login(session, email=email, password=password, ip=ip))


@router.post("/auth/refresh", response_model=TokenResponse)
async def refresh(body: RefreshRequest, accounts: AccountsDep, session: SessionDep) -> TokenResponse:
    """Public: the refresh token is the credential. Rotates it; a reused token revokes its family."""
    return _tokens(await accounts.auth.refresh(session, refresh_token=body.refresh_token))


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


@router.get("/users/me", response_model=UserOut)
async def me(principal: UserDep, session: SessionDep) -> UserOut:
    """Any signed-in user (JWT or API key)."""
    assert principal.user_id is not None
    return UserOut.model_validate(await UserRepository(session).get(principal.user_id))
