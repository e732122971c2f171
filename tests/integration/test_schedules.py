"""The schedules API, and firing: one task per tick however many fire at once, the latest missed
tick once after downtime, and the schedules job modules declare."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.job import JobType, Registry, Scheduled, discover
from orchestrator.schedules.ticks import check_declared, declare, fire_due

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine

EVERY_SECOND = "* * * * * *"
CATCH_UP_S = 30.0


@pytest.fixture
async def engine(settings) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


@pytest.fixture(autouse=True)
async def no_schedule_left(engine) -> AsyncIterator[None]:
    """Left enabled, a schedule would fire into every later test's workers."""
    yield
    async with engine.begin() as db:
        await db.execute(text("DELETE FROM schedules"))


@pytest.fixture
def registry() -> Registry:
    return discover(["jobs", "tests.jobs"], test_types=True)


def declaring(registry: Registry, *schedules: Scheduled) -> Registry:
    """The noop job type alone, its module declaring `schedules`."""
    noop = registry["noop"]
    return Registry(
        {"noop": JobType(name="noop", payload=noop.payload, handler=noop.handler, schedules=schedules)}
    )


async def create(client, **fields) -> dict:
    body = {"name": f"s-{uuid.uuid4().hex[:8]}", "type": "noop", "cron": "0 3 * * *"} | fields
    response = await client.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/schedules/{response.json()['id']}"
    return response.json()


async def test_a_schedule_is_created_read_listed_changed_and_deleted(client):
    made = await create(
        client, name="nightly", cron="0 3 * * *", timezone="Europe/Paris", payload={"echo": {"n": 1}}
    )
    assert made["next_run_at"].endswith(("T01:00:00Z", "T02:00:00Z"))  # 03:00 in Paris, UTC+1 or +2
    assert made["enabled"] is True
    assert made["declared_by"] is None

    detail = (await client.get(f"/schedules/{made['id']}")).json()
    assert detail["name"] == "nightly"
    assert detail["recent_tasks"] == []
    listed = (await client.get("/schedules", params={"type": "noop"})).json()
    assert [item["id"] for item in listed["items"]] == [made["id"]]

    changed = await client.patch(f"/schedules/{made['id']}", json={"cron": "*/5 * * * *", "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["cron"] == "*/5 * * * *"
    assert changed.json()["enabled"] is False
    assert (await client.get("/schedules", params={"enabled": "true"})).json()["items"] == []

    assert (await client.delete(f"/schedules/{made['id']}")).status_code == 204
    assert (await client.get(f"/schedules/{made['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),  # each host's own: one tick, other instants
        ({"type": "no_such_type"}, "type"),
        ({"type": "lead_process", "payload": {"lead_id": "not a uuid"}}, "payload.lead_id"),
        ({"name": ""}, "name"),
        ({"cron": "* * * * *\x00"}, "cron"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(client, body, field):
    response = await client.post("/schedules", json={"name": "x", "type": "noop", "cron": "* * * * *"} | body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    named = {error.get("field", "") for error in problem.get("errors", [])} | {problem.get("field", "")}
    assert any(name == field or name.endswith(f".{field}") for name in named), problem


async def test_a_patch_is_checked_as_a_create_and_null_only_clears_the_lead(client):
    made = await create(client)
    for body, field in [
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"timezone": "Nowhere/Nothing"}, "timezone"),
        ({"name": None}, "name"),
        ({"payload": {"echo": {}}}, "type"),  # a payload comes with the type that decides its schema
        ({"type": "lead_process", "payload": {}}, "lead_id"),
    ]:
        response = await client.patch(f"/schedules/{made['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text, (body, response.text)
    # The stored payload does not fit the new type: the stored state refuses it.
    misfit = await client.patch(f"/schedules/{made['id']}", json={"type": "lead_process"})
    assert misfit.status_code == 409, misfit.text
    assert "payload" in misfit.text
    assert (await client.get(f"/schedules/{made['id']}")).json()["cron"] == made["cron"]


async def test_a_name_taken_is_a_409_and_a_missing_lead_a_404(client):
    made = await create(client)
    taken = await client.post("/schedules", json={"name": made["name"], "type": "noop", "cron": "* * * * *"})
    assert taken.status_code == 409, taken.text
    missing = await client.post(
        "/schedules",
        json={"name": "other", "type": "noop", "cron": "* * * * *", "lead_id": str(uuid.uuid4())},
    )
    assert missing.status_code == 404, missing.text
    assert "lead_id" in missing.text
    # The same on a change, and the names on a rename (both found by the fuzz test as 500s).
    moved = await client.patch(f"/schedules/{made['id']}", json={"lead_id": str(uuid.uuid4())})
    assert moved.status_code == 404, moved.text
    assert "lead_id" in moved.text
    other = await create(client)
    renamed = await client.patch(f"/schedules/{other['id']}", json={"name": made["name"]})
    assert renamed.status_code == 409, renamed.text
    assert made["name"] in renamed.text


async def set_next_run(engine: AsyncEngine, schedule_id: str, seconds_ago: float) -> None:
    """Its next tick, `seconds_ago` whole seconds ago (a tick of a schedule that fires each second)."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE schedules SET next_run_at = date_trunc('second', now()) - make_interval(secs => :s)"
                " WHERE id = :id"
            ),
            {"s": seconds_ago, "id": uuid.UUID(schedule_id)},
        )


async def test_after_downtime_the_latest_missed_tick_fires_once(client, engine, registry):
    made = await create(client, cron="*/10 * * * * *")
    await set_next_run(engine, made["id"], 3600)  # an hour of missed ticks
    async with engine.begin() as db:
        fired = await fire_due(db, registry, catch_up_s=0)
        now = await db.scalar(text("SELECT now()"))
    assert len(fired) == 1
    detail = (await client.get(f"/schedules/{made['id']}")).json()
    [task] = detail["recent_tasks"]
    tick = task["scheduled_for"]
    assert task["schedule_id"] == made["id"]
    assert task["run_at"] == tick
    # The latest tick of the hour: within the last ten seconds, on a multiple of ten seconds.
    assert int(tick[17:19]) % 10 == 0
    assert detail["last_run_at"] == tick
    assert detail["next_run_at"] > now.isoformat().replace("+00:00", "Z")[:19]
    async with engine.begin() as db:
        again = await fire_due(db, registry, CATCH_UP_S)  # a tick later, if ten seconds went by
    assert all(task.run_at > dt.datetime.fromisoformat(tick) for task in again)


async def test_ticks_missed_by_less_than_the_catch_up_all_fire_once(client, engine, registry):
    made = await create(client, cron=EVERY_SECOND)
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE schedules SET next_run_at = date_trunc('second', now()) - interval '20 s'")
        )
        fired = await fire_due(db, registry, CATCH_UP_S)
        ticks = (
            (await db.execute(text("SELECT scheduled_for FROM tasks ORDER BY scheduled_for"))).scalars().all()
        )
        assert await fire_due(db, registry, CATCH_UP_S) == []
    assert len(fired) == len(ticks) == 21
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)] == [1.0] * 20
    detail = (await client.get(f"/schedules/{made['id']}")).json()
    assert detail["last_run_at"] == detail["recent_tasks"][0]["scheduled_for"]


async def test_concurrent_rounds_make_one_task_per_tick(client, engine, registry):
    made = [await create(client, cron=EVERY_SECOND) for _ in range(5)]
    for schedule in made:
        await set_next_run(engine, schedule["id"], 0)

    async def round_() -> int:
        async with engine.begin() as db:
            return len(await fire_due(db, registry, CATCH_UP_S))

    fired = await asyncio.gather(*(round_() for _ in range(8)))
    assert sum(fired) == len(made)
    async with engine.begin() as db:
        counts = (
            await db.execute(text("SELECT schedule_id, scheduled_for, count(*) FROM tasks GROUP BY 1, 2"))
        ).all()
    assert len(counts) == len(made)
    assert {row.count for row in counts} == {1}


async def test_a_tick_that_has_its_task_gets_no_second_one(client, engine, registry):
    """The unique index decides, not the row lock: a round that read the schedule before
    another round moved it (here: the schedule put back on the same tick) records nothing."""
    await create(client, cron="0 3 * * *")
    async with engine.begin() as db:  # its last 03:00, missed
        await db.execute(
            text(
                "UPDATE schedules SET next_run_at = date_trunc('day', now()) + interval '3 hours'"
                " - CASE WHEN date_trunc('day', now()) + interval '3 hours' <= now()"
                " THEN interval '0' ELSE interval '1 day' END"
            )
        )
    async with engine.begin() as db:
        [_first] = await fire_due(db, registry, CATCH_UP_S)
        tick = (await db.execute(text("SELECT last_run_at FROM schedules"))).scalar_one()
    async with engine.begin() as db:
        await db.execute(text("UPDATE schedules SET next_run_at = :tick"), {"tick": tick})
    async with engine.begin() as db:
        assert await fire_due(db, registry, CATCH_UP_S) == []
        count = await db.scalar(text("SELECT count(*) FROM tasks WHERE schedule_id IS NOT NULL"))
    assert count == 1


async def test_job_modules_declare_schedules_the_api_may_only_pause(client, engine, registry):
    declared = declaring(registry, Scheduled(name="nightly-noop", cron="0 3 * * *", timezone="Europe/Paris"))
    async with engine.begin() as db:
        assert await declare(db, declared) == 1
    async with engine.begin() as db:
        assert await declare(db, declared) == 0  # a second start changes nothing
    [schedule] = (await client.get("/schedules")).json()["items"]
    assert schedule["declared_by"] == "noop"
    assert schedule["name"] == "nightly-noop"

    refused = await client.patch(f"/schedules/{schedule['id']}", json={"cron": "* * * * *"})
    assert refused.status_code == 409, refused.text
    assert "cron" in refused.text
    paused = await client.patch(f"/schedules/{schedule['id']}", json={"enabled": False})
    assert paused.status_code == 200, paused.text

    changed = declaring(registry, Scheduled(name="nightly-noop", cron="0 4 * * *", timezone="Europe/Paris"))
    async with engine.begin() as db:
        assert await declare(db, changed) == 1
    again = (await client.get(f"/schedules/{schedule['id']}")).json()
    assert again["cron"] == "0 4 * * *"
    assert again["enabled"] is False  # the operator's pause outlives a deploy


async def test_a_declared_name_taken_through_the_api_stays_the_apis(client, engine, registry):
    made = await create(client, name="nightly-noop", enabled=False, payload={"echo": {"mine": True}})
    async with engine.begin() as db:
        assert await declare(db, declaring(registry, Scheduled(name="nightly-noop", cron="0 4 * * *"))) == 0
    kept = (await client.get(f"/schedules/{made['id']}")).json()
    assert (kept["declared_by"], kept["cron"], kept["payload"]) == (None, made["cron"], made["payload"])


async def test_a_round_skips_a_schedule_whose_lead_is_being_deleted_rather_than_wait(
    client, engine, registry
):
    lead = (await client.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    made = await create(client, cron=EVERY_SECOND, lead_id=lead["id"])
    await set_next_run(engine, made["id"], 0)
    async with engine.connect() as deleting:
        await deleting.execute(text("BEGIN"))
        await deleting.execute(
            text("SELECT id FROM leads WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(lead["id"])}
        )
        async with asyncio.timeout(5), engine.begin() as db:  # a wait would deadlock with the delete
            assert await fire_due(db, registry, CATCH_UP_S) == []
        await deleting.execute(text("ROLLBACK"))
    async with engine.begin() as db:
        assert len(await fire_due(db, registry, CATCH_UP_S)) >= 1  # due still, and fired next round


async def test_a_deleted_schedules_tasks_keep_its_id(client, engine, registry):
    made = await create(client, cron=EVERY_SECOND)
    await set_next_run(engine, made["id"], 0)
    async with engine.begin() as db:
        [task] = await fire_due(db, registry, catch_up_s=0)
    assert (await client.delete(f"/schedules/{made['id']}")).status_code == 204
    assert (await client.get(f"/tasks/{task.id}")).json()["schedule_id"] == made["id"]


def test_a_wrong_declaration_is_named(registry):
    wrong = declaring(registry, Scheduled(name="broken", cron="0 3 * *"))
    with pytest.raises(ValueError, match="job type 'noop', schedule 'broken': cron"):
        check_declared(wrong)


async def test_the_api_makes_no_more_schedules_than_schedules_max_even_all_at_once(settings, api_key):
    from tests.helpers import app_client

    capped = settings.model_copy(update={"schedules_max": 3})
    async with app_client(capped, api_key) as client:
        body = {"type": "noop", "cron": "0 3 * * *"}
        answers = await asyncio.gather(
            *(client.post("/schedules", json=body | {"name": f"cap-{n}"}) for n in range(6))
        )
        assert sorted(answer.status_code for answer in answers) == [201, 201, 201, 409, 409, 409]
        refused = next(answer for answer in answers if answer.status_code == 409).json()
        assert "at most 3" in refused["detail"]
        assert "SCHEDULES_MAX" in refused["detail"]
        made = next(answer for answer in answers if answer.status_code == 201).json()
        assert (await client.delete(f"/schedules/{made['id']}")).status_code == 204
        assert (await client.post("/schedules", json=body | {"name": "cap-again"})).status_code == 201
        assert len((await client.get("/schedules")).json()["items"]) == 3


async def test_two_creations_at_once_cannot_both_take_the_last_place(engine, settings):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from orchestrator.errors import Conflict
    from orchestrator.schedules.schemas import ScheduleCreate
    from orchestrator.schedules.services import create_schedule

    capped = discover(
        ["jobs", "tests.jobs"], test_types=True, settings=settings.model_copy(update={"schedules_max": 1})
    )
    sessions = async_sessionmaker(engine)

    def body(name: str) -> ScheduleCreate:
        return ScheduleCreate(name=name, type="noop", cron="0 3 * * *")

    async with sessions() as first, sessions() as second:
        await first.begin()
        await create_schedule(first, capped, body("last-place-1"))  # the last place, not yet committed
        second_try = asyncio.create_task(create_schedule(second, capped, body("last-place-2")))
        await asyncio.sleep(0.5)
        assert not second_try.done()  # it waits for the first to end, rather than count without it
        await first.commit()
        with pytest.raises(Conflict, match="at most 1"):
            await second_try
