"""Prompt registry use cases: prompts, immutable versions, audited activation, rollback and diff.

Object-level rule (shared by applications, datasets and runs): a signed-in user manages what they
created; an admin manages everything; anyone else gets the same 404 as for an id that does not exist.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.llmops import Prompt, PromptActivation, PromptVersion
from gateway.db.repositories.prompts import PromptRepository
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.prompts import template
from gateway.security.principal import Principal


def check_ref(ref: str, what: str, param: str) -> str:
    """An id or name from a path or body: anything no row could have (too long, control
    characters such as NUL, which the database would refuse) is the same 404 as a missing one."""
    if not 0 < len(ref) <= 128 or any(ord(ch) < 32 for ch in ref):
        raise NotFound(f"{what} not found", param=param)
    return ref


def visible(principal: Principal, owner_id: str | None) -> bool:
    return principal.is_admin or (principal.user_id is not None and owner_id == principal.user_id)


def owner_filter(principal: Principal) -> str | None:
    """The owner a listing is narrowed to (``None``: an admin sees every row)."""
    return None if principal.is_admin else principal.user_id


def version_dict(row: PromptVersion) -> dict[str, Any]:
    return {
        "id": row.id,
        "prompt_id": row.prompt_id,
        "version": row.number,
        "messages": row.messages,
        "variables": row.variables,
        "note": row.note,
        "author_id": row.author_id,
        "active": row.is_active,
        "created_at": row.created_at.isoformat(),
    }


def prompt_dict(row: Prompt, active: PromptVersion | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "owner_id": row.owner_id,
        "created_at": row.created_at.isoformat(),
        "active_version": version_dict(active) if active is not None else None,
    }


def activation_dict(row: PromptActivation) -> dict[str, Any]:
    return {
        "id": row.id,
        "version_id": row.version_id,
        "previous_version_id": row.previous_version_id,
        "actor_id": row.actor_id,
        "created_at": row.created_at.isoformat(),
    }


async def get_prompt(session: AsyncSession, principal: Principal, ref: str, *, lock: bool = False) -> Prompt:
    """A prompt by id or name, if the caller may see it."""
    check_ref(ref, "Prompt", "prompt_id")
    repo = PromptRepository(session)
    row = await repo.get_or_none(ref, lock=lock) or await repo.get_by_name(ref)
    if row is not None and lock and row.id != ref:
        row = await repo.get_or_none(row.id, lock=True)
    if row is None or not visible(principal, row.owner_id):
        raise NotFound(f"Prompt {ref!r} not found", param="prompt_id")
    return row


async def create_prompt(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    description: str | None,
    messages: Any,
    note: str | None,
) -> dict[str, Any]:
    repo = PromptRepository(session)
    if await repo.get_by_name(name) is not None:
        raise Conflict(f"A prompt named {name!r} already exists", param="name")
    checked = template.normalise(messages) if messages is not None else None
    row = await repo.create(Prompt(name=name, description=description, owner_id=principal.user_id))
    active = None
    if checked is not None:
        version = await _add(repo, row, principal, checked, note)
        await repo.activate(prompt_id=row.id, version_id=version.id, actor_id=principal.user_id)
        active = await repo.active(row.id)
    return prompt_dict(row, active)


async def read_prompt(session: AsyncSession, principal: Principal, ref: str) -> dict[str, Any]:
    row = await get_prompt(session, principal, ref)
    return prompt_dict(row, await PromptRepository(session).active(row.id))


async def list_prompts(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    repo = PromptRepository(session)
    rows = await repo.list(owner_id=owner_filter(principal), limit=limit, offset=offset)
    return [prompt_dict(row, await repo.active(row.id)) for row in rows]


async def _add(
    repo: PromptRepository,
    prompt: Prompt,
    principal: Principal,
    messages: list[dict[str, str]],
    note: str | None,
) -> PromptVersion:
    return await repo.add_version(
        PromptVersion(
            prompt_id=prompt.id,
            number=await repo.next_number(prompt.id),
            messages=messages,
            variables=template.variables(messages),
            note=note,
            author_id=principal.user_id,
            is_active=False,
        )
    )


async def add_version(
    session: AsyncSession, principal: Principal, ref: str, *, messages: Any, note: str | None, activate: bool
) -> dict[str, Any]:
    checked = template.normalise(messages)
    prompt = await get_prompt(session, principal, ref, lock=True)  # numbers are handed out one at a time
    repo = PromptRepository(session)
    try:
        version = await _add(repo, prompt, principal, checked, note)
    except IntegrityError as exc:
        raise Conflict("Another version was written at the same time; retry", param="messages") from exc
    if activate:
        await repo.activate(prompt_id=prompt.id, version_id=version.id, actor_id=principal.user_id)
        version = await repo.version_by_id(version.id) or version
    return version_dict(version)


async def list_versions(session: AsyncSession, principal: Principal, ref: str) -> list[dict[str, Any]]:
    prompt = await get_prompt(session, principal, ref)
    return [version_dict(row) for row in await PromptRepository(session).versions(prompt.id)]


async def get_version(session: AsyncSession, principal: Principal, ref: str, version: str) -> PromptVersion:
    check_ref(version, "Version", "version")
    prompt = await get_prompt(session, principal, ref)
    row = await PromptRepository(session).version(prompt.id, version)
    if row is None:
        raise NotFound(f"Version {version!r} of prompt {ref!r} not found", param="version")
    return row


async def activate(session: AsyncSession, principal: Principal, ref: str, version: str) -> dict[str, Any]:
    """Make ``version`` the active one; the prompt row is locked so activations queue up."""
    check_ref(version, "Version", "version")
    prompt = await get_prompt(session, principal, ref, lock=True)
    repo = PromptRepository(session)
    row = await repo.version(prompt.id, version)
    if row is None:
        raise NotFound(f"Version {version!r} of prompt {ref!r} not found", param="version")
    try:
        audit = await repo.activate(prompt_id=prompt.id, version_id=row.id, actor_id=principal.user_id)
    except IntegrityError as exc:
        raise Conflict("Another activation of this prompt is under way; retry", param="version") from exc
    active = await repo.active(prompt.id)
    return {"prompt": prompt_dict(prompt, active), "activation": activation_dict(audit)}


async def rollback(session: AsyncSession, principal: Principal, ref: str) -> dict[str, Any]:
    """Undo the last activation: the version that was active before it becomes active again."""
    prompt = await get_prompt(session, principal, ref, lock=True)
    history = await PromptRepository(session).activations(prompt.id)
    if not history or history[0].previous_version_id is None:
        raise InvalidRequest("There is no earlier activation to roll back to", code="nothing_to_roll_back")
    return await activate(session, principal, prompt.id, history[0].previous_version_id)


async def activations(session: AsyncSession, principal: Principal, ref: str) -> list[dict[str, Any]]:
    prompt = await get_prompt(session, principal, ref)
    return [activation_dict(row) for row in await PromptRepository(session).activations(prompt.id)]


def _lines(version: PromptVersion) -> list[str]:
    lines: list[str] = []
    for message in version.messages:
        lines.append(f"[{message['role']}]")
        lines.extend(message["content"].splitlines())
    return lines


async def diff(session: AsyncSession, principal: Principal, ref: str, a: str, b: str) -> dict[str, Any]:
    left = await get_version(session, principal, ref, a)
    right = await get_version(session, principal, ref, b)
    unified = difflib.unified_diff(
        _lines(left), _lines(right), fromfile=f"v{left.number}", tofile=f"v{right.number}", lineterm=""
    )
    return {
        "from": left.number,
        "to": right.number,
        "diff": "\n".join(unified),
        "variables_added": sorted(set(right.variables) - set(left.variables)),
        "variables_removed": sorted(set(left.variables) - set(right.variables)),
    }
