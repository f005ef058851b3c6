"""Applications: a name bound to a model or alias (``auto`` too), a prompt (its active version or a
pinned one) and generation options, so a prompt changes without a deploy (issue #24).

Calling one: ``model: "app:<name>"`` on ``/v1/chat/completions`` or ``POST /v1/apps/{name}/run``.
The application's rendered messages come first, the caller's messages are appended; the caller's
own generation parameters override the application's options. Who may call: the owner, an admin,
or anyone signed in when the application is ``shared``; the model allow-lists of the key and user
still apply to the model the application names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.agent.state import ChatInput
from gateway.db.llmops import Application, PromptVersion
from gateway.db.repositories.prompts import ApplicationRepository, PromptRepository
from gateway.errors import Conflict, InvalidRequest, ModelNotFound, NotFound
from gateway.observability import metrics
from gateway.prompts import template
from gateway.providers.tokens import count_messages
from gateway.runtime import RuntimeSnapshot
from gateway.schemas.openai import SAMPLING_FIELDS, ChatCompletionRequest
from gateway.security.principal import Principal
from gateway.services import rollouts
from gateway.services.prompts import check_ref, get_prompt, owner_filter, visible
from gateway.usage.record import UsageTags

APP_PREFIX = "app:"
OPTION_FIELDS = frozenset(SAMPLING_FIELDS) - {"user", "n"}


@dataclass(slots=True)
class Resolved:
    application: Application
    version: PromptVersion
    arm: dict[str, Any] | None = None
    """The live rollout's arm this call was assigned (``services/rollouts.py``)."""
    shadow: rollouts.ShadowPlan | None = None
    shadow_version: PromptVersion | None = None

    @property
    def model(self) -> str:
        return (self.arm or {}).get("model") or self.application.model


def app_dict(row: Application) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "owner_id": row.owner_id,
        "model": row.model,
        "prompt_id": row.prompt_id,
        "pinned_version_id": row.pinned_version_id,
        "options": row.options,
        "shared": row.shared,
        "rollout": rollouts.public_rollout(row.rollout),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - OPTION_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unsupported application options: {', '.join(unknown)}", param=f"options.{unknown[0]}"
        )
    try:
        ChatCompletionRequest.model_validate(
            {"model": "x", "messages": [{"role": "user", "content": "x"}], **options}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        param = "options." + ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"Invalid value for {param}: {first['msg']}", param=param) from exc
    return options


def check_model(snapshot: RuntimeSnapshot, model: str) -> str:
    if model != "auto" and model not in snapshot.router.public_names():
        raise ModelNotFound(f"The model {model!r} does not exist", param="model")
    return model


async def _pinned(session: AsyncSession, prompt_id: str, pinned: str | None) -> str | None:
    if pinned is None:
        return None
    check_ref(pinned, "Pinned version", "pinned_version")
    row = await PromptRepository(session).version(prompt_id, pinned)
    if row is None:
        raise NotFound(f"Version {pinned!r} of the prompt not found", param="pinned_version")
    return row.id


async def create(
    session: AsyncSession, principal: Principal, snapshot: RuntimeSnapshot, *, fields: dict[str, Any]
) -> dict[str, Any]:
    repo = ApplicationRepository(session)
    if await repo.get_by_name(fields["name"]) is not None:
        raise Conflict(f"An application named {fields['name']!r} already exists", param="name")
    prompt = await get_prompt(session, principal, fields["prompt"])
    row = Application(
        name=fields["name"],
        description=fields.get("description"),
        owner_id=principal.user_id,
        model=check_model(snapshot, fields["model"]),
        prompt_id=prompt.id,
        pinned_version_id=await _pinned(session, prompt.id, fields.get("pinned_version")),
        options=check_options(dict(fields.get("options") or {})),
        shared=bool(fields.get("shared", False)),
    )
    return app_dict(await repo.create(row))


async def get(session: AsyncSession, principal: Principal, ref: str) -> Application:
    check_ref(ref, "Application", "application")
    repo = ApplicationRepository(session)
    row = await repo.get_or_none(ref) or await repo.get_by_name(ref)
    if row is None or not visible(principal, row.owner_id):
        raise NotFound(f"Application {ref!r} not found", param="application")
    return row


async def update(
    session: AsyncSession,
    principal: Principal,
    snapshot: RuntimeSnapshot,
    ref: str,
    *,
    fields: dict[str, Any],
) -> dict[str, Any]:
    row = await get(session, principal, ref)
    if "model" in fields:
        row.model = check_model(snapshot, fields["model"])
    if "prompt" in fields:
        prompt_id = (await get_prompt(session, principal, fields["prompt"])).id
        if row.rollout and prompt_id != row.prompt_id:
            raise Conflict(
                "The application has a live rollout over its prompt's versions: promote or roll it back"
                " first",
                param="prompt",
                code="rollout_live",
            )
        row.prompt_id = prompt_id
        row.pinned_version_id = None
    if "pinned_version" in fields:
        row.pinned_version_id = await _pinned(session, row.prompt_id, fields["pinned_version"])
    if "options" in fields:
        row.options = check_options(dict(fields["options"] or {}))
    for name in ("description", "shared"):
        if name in fields:
            setattr(row, name, fields[name])
    await session.flush()
    return app_dict(row)


async def list_apps(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await ApplicationRepository(session).list(
        owner_id=owner_filter(principal), limit=limit, offset=offset
    )
    return [app_dict(row) for row in rows]


async def delete(session: AsyncSession, principal: Principal, ref: str) -> None:
    await ApplicationRepository(session).delete(await get(session, principal, ref))


async def resolve(
    session: AsyncSession,
    principal: Principal,
    name: str,
    *,
    version: str | None = None,
    sticky: dict[str, str | None] | None = None,
    chat: ChatInput | None = None,
) -> Resolved:
    """The application and the prompt version a call runs: ``version`` (an evaluation's variant),
    else the live rollout's arm for this caller (``sticky``), else the pinned one, else the active
    one. With ``chat`` (a live call) the rollout's shadow is planned too."""
    row = await ApplicationRepository(session).get_by_name(name)
    if row is None or not (row.shared or visible(principal, row.owner_id)):
        raise ModelNotFound(f"The application {name!r} does not exist", param="model")
    repo = PromptRepository(session)
    arm = rollouts.pick_arm(row, sticky) if version is None and chat is not None else None
    if version is not None:
        chosen = await repo.version(row.prompt_id, version)
    elif arm is not None and arm.get("prompt_version_id"):
        chosen = await repo.version_by_id(arm["prompt_version_id"])
    elif row.pinned_version_id is not None:
        chosen = await repo.version_by_id(row.pinned_version_id)
    else:
        chosen = await repo.active(row.prompt_id)
    if chosen is None:
        raise InvalidRequest(
            f"The application {name!r} has no prompt version to run", code="no_active_version"
        )
    resolved = Resolved(application=row, version=chosen, arm=arm)
    if chat is not None and version is None and row.rollout:
        plan = rollouts.shadow_plan(
            row,
            primary_version_id=chosen.id,
            caller_messages=chat.messages,
            caller_params=chat.params,
            request_key=(sticky or {}).get("request") or "",
        )
        if plan is not None:
            resolved.shadow = plan
            resolved.shadow_version = await repo.version_by_id(plan.version_id)
    return resolved


def apply(resolved: Resolved, chat: ChatInput, variables: dict[str, Any]) -> UsageTags:
    """Turn ``chat`` into the application's call: model, rendered prompt + the caller's messages,
    options under the caller's parameters."""
    rendered = template.render(resolved.version.messages, variables)
    shadow = resolved.shadow
    if shadow is not None and resolved.shadow_version is not None:
        shadow = rollouts.render_shadow(shadow, resolved.shadow_version, variables)
    chat.model = resolved.model
    chat.messages = [*rendered, *chat.messages]
    chat.params = {**resolved.application.options, **chat.params}
    chat.prompt_tokens = count_messages(chat.messages)
    if resolved.arm is not None:
        metrics.APP_ROLLOUT_CALLS.labels(kind="split").inc()
    if shadow is not None:
        metrics.APP_ROLLOUT_CALLS.labels(kind="shadow").inc()
    return UsageTags(
        application=resolved.application.name,
        prompt_version_id=resolved.version.id,
        app_arm=resolved.arm["name"] if resolved.arm is not None else None,
        shadow=shadow,
    )


def take_variables(chat: ChatInput) -> dict[str, Any]:
    """``prompt_variables`` of the request body (an object), removed from what reaches the provider."""
    extra = chat.params.get("extra") or {}
    value = extra.pop("prompt_variables", None) if isinstance(extra, dict) else None
    if isinstance(extra, dict) and not extra:
        chat.params.pop("extra", None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("prompt_variables must be an object", param="prompt_variables")
    return value


async def prepare_chat(
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    principal: Principal,
    chat: ChatInput,
    *,
    sticky: dict[str, str | None] | None = None,
) -> UsageTags:
    """``model: "app:<name>"`` → the application's call, in a short session before the model call.
    ``sticky``: the request's sticky keys (a live rollout assigns its arm on them)."""
    if sessionmaker is None:
        raise InvalidRequest("Applications need the gateway's database", param="model", code="no_database")
    variables = take_variables(chat)
    async with sessionmaker() as session:
        resolved = await resolve(
            session, principal, chat.model.removeprefix(APP_PREFIX), sticky=sticky, chat=chat
        )
    return apply(resolved, chat, variables)
