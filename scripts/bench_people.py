"""People at district size: how fast a person gets home, and how fast the
lessons library answers, on SQLite and on PostgreSQL.

A district of one school, one coach with 200 teachers in the caseload and
5,000 lessons (ended ones with a start time, a few scheduled today), made
directly in the database. A real server on 127.0.0.1 (in this process) for
each backend; prints:

* sign-in to the home page: POST /auth/login (argon2id verify, a new login
  session) and GET /home, in ms (median, p95);
* GET /home and GET /api/lessons?limit=100 as the coach: p50, p95 (ms);
* the home page's time to first paint in Chromium (Debian's), signed in.

PostgreSQL is started here (testkit/postgres.py: initdb on a loopback port,
ended by PID). Usage: .venv/bin/python scripts/bench_people.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from server.core.config import Limits  # noqa: E402
from server.http.login import PEOPLE_KEY  # noqa: E402
from server.people.principal import PersonRole  # noqa: E402
from server.people.service import People  # noqa: E402
from server.storage.models import CaseloadEntry, Lesson, Person, RoleGrant  # noqa: E402
from testkit.people import PASSWORD, Browser  # noqa: E402
from testkit.postgres import PostgresProc, postgres_unavailable  # noqa: E402
from testkit.server import make_config, running_server  # noqa: E402

TEACHERS = 200
LESSONS = 5000


async def seed(people: People) -> None:
    d = people.directory
    school = await d.create_school("Bench Elementary")
    coach = await d.create_person("Coach Bench", "coach@bench.example.org")
    await d.grant(coach, PersonRole.COACH, school)
    await d.set_password_hash(
        coach, await people.accounts.passwords.hash(PASSWORD), must_change=False
    )
    now = time.time()
    teachers = [
        {
            "id": f"pe-t{i:04d}",
            "name": f"Teacher {i:03d}",
            "email": f"t{i}@bench.example.org",
            "must_change_password": False,
            "failed_logins": 0,
            "created_at": now,
        }
        for i in range(TEACHERS)
    ]
    settings = json.dumps({"recording": True})
    lessons = []
    for i in range(LESSONS):
        t = teachers[i % TEACHERS]
        today = i >= LESSONS - 12
        start = now + 3600 if today else now - 86400 * (1 + i // TEACHERS) - 3600
        lessons.append(
            {
                "id": f"s-bench-{i:05d}",
                "title": f"Lesson {i}",
                "teacher_name": t["name"],
                "state": "scheduled" if today else "ended",
                "created_at": start - 86400,
                "scheduled_for": start,
                "started_at": None if today else start,
                "ended_at": None if today else start + 2700,
                "settings": settings,
                "recording_decisions": "[]",
                "kind": "lesson",
                "teacher_id": t["id"],
                "coach_id": coach,
                "school_id": school,
            }
        )
    async with people.directory.db.session() as s, s.begin():
        await s.execute(insert(Person), teachers)
        await s.execute(
            insert(RoleGrant),
            [{"person_id": t["id"], "role": "teacher", "school_id": school} for t in teachers],
        )
        await s.execute(
            insert(CaseloadEntry),
            [{"coach_id": coach, "teacher_id": t["id"], "created_at": now} for t in teachers],
        )
        for i in range(0, len(lessons), 1000):
            await s.execute(insert(Lesson), lessons[i : i + 1000])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def timed(n: int, fn: Any) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def first_paint(url: str) -> float | None:
    from testkit.browser import CHROMIUM, launched_chromium

    if not CHROMIUM.exists():
        return None
    async with launched_chromium() as b:
        page = await (await b.new_context()).new_page()
        await page.goto(url + "/signin")
        await page.fill("input[name=email]", "coach@bench.example.org")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("#password-sign-in")
        await page.wait_for_url(url + "/home")
        paints = []
        for _ in range(5):
            tab = await page.context.new_page()
            await tab.goto(url + "/home", wait_until="load")
            fp = await tab.wait_for_function(
                "() => (performance.getEntriesByType('paint')"
                ".find(e => e.name === 'first-contentful-paint') || {}).startTime || null",
                timeout=10000,
            )
            paints.append(float(await fp.json_value()))
            await tab.close()
        return statistics.median(paints) if paints else None


async def run(backend: str, url: str, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # one address signs in over and over: lift its sign-in rate limit
        limits = Limits(logins_per_minute_per_address=10_000)
        config = make_config(Path(tmp), database_url=url, limits=limits)
        async with running_server(config) as server:
            people: People = server.app[PEOPLE_KEY]
            await seed(people)
            b = Browser(server.url)
            try:

                async def sign_in_home() -> None:
                    b.http.cookie_jar.clear()
                    r = await b.sign_in("coach@bench.example.org")
                    assert r.status == 303, r.status
                    h = await b.get("/home")
                    assert h.status == 200

                signin = await timed(max(5, rounds // 5), sign_in_home)
                home = await timed(rounds, lambda: b.get("/home"))
                lessons = await timed(rounds, lambda: b.get("/api/lessons?limit=100"))
                page = await b.get("/home")
                assert "Teacher 199" in await page.text()
                fp = await first_paint(server.url)
            finally:
                await b.close()
    return {"backend": backend, "signin": signin, "home": home, "lessons": lessons, "fp": fp}


def report(r: dict[str, Any]) -> None:
    def line(name: str, xs: list[float]) -> str:
        return f"  {name:<34} p50 {pct(xs, 50):7.1f} ms   p95 {pct(xs, 95):7.1f} ms  (n={len(xs)})"

    print(f"{r['backend']}: {TEACHERS} teachers in the caseload, {LESSONS} lessons")
    print(line("sign-in -> home page", r["signin"]))
    print(line("GET /home", r["home"]))
    print(line("GET /api/lessons?limit=100", r["lessons"]))
    fp = r["fp"]
    print(f"  {'home first contentful paint':<34} " + (f"{fp:7.1f} ms" if fp else "(no Chromium)"))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    rounds = 20 if args.quick else 200
    results = [await run("SQLite", "", rounds)]
    if postgres_unavailable() is None:
        pg = PostgresProc()
        try:
            results.append(await run("PostgreSQL", await pg.create("bench"), rounds))
        finally:
            pg.stop()
    else:
        print(f"PostgreSQL skipped: {postgres_unavailable()}")
    for r in results:
        report(r)
    if len(results) == 2:
        ratio = pct(results[1]["lessons"], 95) / pct(results[0]["lessons"], 95)
        print(f"GET /api/lessons p95, PostgreSQL / SQLite: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
