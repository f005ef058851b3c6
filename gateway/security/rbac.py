"""Role checks. Routes declare who may call them with these helpers (used as FastAPI dependencies)."""

from __future__ import annotations

from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.security.principal import Principal, Role


def require_user(principal: Principal) -> Principal:
    """Any signed-in caller (JWT or API key); the anonymous principal is refused."""
    if principal.user_id is None:
        raise AuthenticationFailed("Authentication required", code="missing_credentials")
    return principal


def require_role(principal: Principal, role: Role) -> Principal:
    require_user(principal)
    if principal.role is not role:
        raise PermissionDenied(f"Requires the {role.value} role")
    return principal


def require_admin(principal: Principal) -> Principal:
    return require_role(principal, Role.ADMIN)


def require_session(principal: Principal) -> Principal:
    """A signed-in user with a login session (JWT), not an API key: for account management."""
    require_user(principal)
    if principal.api_key_id is not None:
        raise PermissionDenied("This operation needs a login session, not an API key")
    return principal
