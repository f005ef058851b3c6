"""Datasets of test cases: golden (small, human-verified) or evaluation (larger), tagged and
versioned. Every change (cases added, edited, removed, imported) makes a new dataset version; a
case is never rewritten, it is retired and succeeded, so a run that recorded version ``n`` can
always be replayed on the same cases. Each change runs in the request's one transaction: an import
that fails on its 9,000th row leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.llmops import Dataset, DatasetCase
from gateway.db.repositories.evals import DatasetRepository
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.evals import assertions, datasets_io
from gateway.security.principal import Principal
from gateway.services.prompts import check_ref, owner_filter, visible

KINDS = ("golden", "evaluation")


def dataset_dict(row: Dataset, cases: int | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "description": row.description,
        "owner_id": row.owner_id,
        "tags": row.tags,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if cases is not None:
        out["cases"] = cases
    return out


def case_dict(row: DatasetCase) -> dict[str, Any]:
    return {
        "id": row.id,
        "input": row.input,
        "vars": row.vars,
        "expected": row.expected,
        "assert": row.assertions,
        "tags": row.tags,
        "verified": row.verified,
        "version_added": row.version_added,
    }


async def get(session: AsyncSession, principal: Principal, ref: str, *, lock: bool = False) -> Dataset:
    check_ref(ref, "Dataset", "dataset_id")
    repo = DatasetRepository(session)
    row = await repo.get_or_none(ref, lock=lock) or await repo.get_by_name(ref)
    if row is not None and lock and row.id != ref:
        row = await repo.get_or_none(row.id, lock=True)
    if row is None or not visible(principal, row.owner_id):
        raise NotFound(f"Dataset {ref!r} not found", param="dataset_id")
    return row


def _rows(dataset: Dataset, cases: list[dict[str, Any]], *, start: int, version: int) -> list[DatasetCase]:
    rows = []
    for offset, item in enumerate(cases):
        checked = assertions.check(item["assertions"])
        rows.append(
            DatasetCase(
                dataset_id=dataset.id,
                position=start + offset,
                input=item["input"],
                vars=item["vars"],
                expected=item["expected"],
                assertions=checked,
                tags=item["tags"],
                verified=item["verified"],
                version_added=version,
            )
        )
    return rows


async def create(session: AsyncSession, principal: Principal, *, fields: dict[str, Any]) -> dict[str, Any]:
    repo = DatasetRepository(session)
    if await repo.get_by_name(fields["name"]) is not None:
        raise Conflict(f"A dataset named {fields['name']!r} already exists", param="name")
    raw_cases = fields.get("cases") or []
    if len(raw_cases) > datasets_io.MAX_CASES:
        raise datasets_io.too_many(len(raw_cases))
    cases = [datasets_io.case(item, f"cases[{index}]") for index, item in enumerate(raw_cases)]
    row = await repo.create(
        Dataset(
            name=fields["name"],
            kind=fields["kind"],
            description=fields.get("description"),
            owner_id=principal.user_id,
            tags=list(fields.get("tags") or []),
            version=1,
        )
    )
    await repo.add_cases(_rows(row, cases, start=0, version=1))
    return dataset_dict(row, len(cases))


async def read(session: AsyncSession, principal: Principal, ref: str) -> dict[str, Any]:
    row = await get(session, principal, ref)
    return dataset_dict(row, await DatasetRepository(session).count(row.id, row.version))


async def list_datasets(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await DatasetRepository(session).list(owner_id=owner_filter(principal), limit=limit, offset=offset)
    return [dataset_dict(row) for row in rows]


async def update(
    session: AsyncSession, principal: Principal, ref: str, *, fields: dict[str, Any]
) -> dict[str, Any]:
    row = await get(session, principal, ref)
    for name in ("description", "kind", "tags"):
        if name in fields and fields[name] is not None:
            setattr(row, name, fields[name])
    await session.flush()
    return dataset_dict(row)


async def delete(session: AsyncSession, principal: Principal, ref: str) -> None:
    await DatasetRepository(session).delete(await get(session, principal, ref))


async def cases(
    session: AsyncSession, principal: Principal, ref: str, *, version: int | None
) -> dict[str, Any]:
    row = await get(session, principal, ref)
    chosen = _version(row, version)
    items = await DatasetRepository(session).cases(row.id, chosen)
    return {"object": "list", "version": chosen, "data": [case_dict(item) for item in items]}


def _version(row: Dataset, version: int | None) -> int:
    if version is None:
        return row.version
    if not 1 <= version <= row.version:
        raise NotFound(f"Dataset {row.name!r} has no version {version}", param="version")
    return version


async def add_cases(
    session: AsyncSession, principal: Principal, ref: str, *, items: list[dict[str, Any]], replace: bool
) -> dict[str, Any]:
    """Add checked cases (``replace``: retire every live case first) as one new version."""
    row = await get(session, principal, ref, lock=True)
    repo = DatasetRepository(session)
    live = 0 if replace else await repo.count(row.id, row.version)
    if live + len(items) > datasets_io.MAX_CASES:
        raise datasets_io.too_many(live + len(items))
    version = row.version + 1
    if replace:
        await repo.retire(row.id, version=version)
    await repo.add_cases(_rows(row, items, start=await repo.next_position(row.id), version=version))
    row.version = version
    await session.flush()
    return dataset_dict(row, live + len(items))


async def import_file(
    session: AsyncSession, principal: Principal, ref: str, *, body: bytes, fmt: str, replace: bool
) -> dict[str, Any]:
    if fmt not in datasets_io.FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(datasets_io.FORMATS)}", param="format")
    row = await get(session, principal, ref)
    live = 0 if replace else await DatasetRepository(session).count(row.id, row.version)
    items = datasets_io.parse(body, fmt, room=datasets_io.MAX_CASES - live)
    if not items:
        raise InvalidRequest("The file holds no cases", param="file", code="empty_dataset")
    return await add_cases(session, principal, ref, items=items, replace=replace)


async def edit_case(
    session: AsyncSession, principal: Principal, ref: str, case_id: str, *, raw: dict[str, Any] | None
) -> dict[str, Any]:
    """Retire a case and (``raw`` given) add its successor: a new dataset version either way."""
    check_ref(case_id, "Case", "case_id")
    row = await get(session, principal, ref, lock=True)
    repo = DatasetRepository(session)
    current = await repo.case(row.id, case_id)
    if current is None:
        raise NotFound(f"Case {case_id!r} not found in dataset {row.name!r}", param="case_id")
    version = row.version + 1
    await repo.retire(row.id, version=version, case_id=case_id)
    out: dict[str, Any] = {}
    if raw is not None:
        merged = {**case_dict(current), **raw}
        successor = _rows(row, [datasets_io.case(merged, "case")], start=current.position, version=version)
        await repo.add_cases(successor)
        out = case_dict(successor[0])
    row.version = version
    await session.flush()
    return {"dataset": dataset_dict(row), "case": out or None}


async def export(
    session: AsyncSession, principal: Principal, ref: str, *, fmt: str, version: int | None
) -> bytes:
    if fmt not in datasets_io.FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(datasets_io.FORMATS)}", param="format")
    listing = await cases(session, principal, ref, version=version)
    return datasets_io.dump(listing["data"], fmt)
