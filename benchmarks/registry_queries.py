"""Time the registry reads a user triggers on every page: region counts (home page) and person search.

Run against a built city, e.g. the S=1 one:
    YKT_DATABASE_URL=sqlite:////tmp/s1.db .venv/bin/python benchmarks/registry_queries.py --runs 20
Prints p50 and p95 per query and scope level (city, county, township, village)."""

from __future__ import annotations

import argparse
import statistics
import time

from sqlalchemy import func, select

from yikatong.core.db import new_session
from yikatong.registry import service
from yikatong.registry.models import Person, Region
from yikatong.security.models import User


def as_user(region_code: str, role: str = "supervisor") -> User:
    """A transient user of the given scope (not saved): the services only read role and region."""
    return User(id=0, username="bench", display_name="bench", role=role, region_code=region_code)


def timed(fn, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    s = new_session()
    persons = s.scalar(select(func.count()).select_from(Person))
    print(f"persons in database: {persons:,}")
    scopes = {"city": s.scalar(select(Region.code).where(Region.level == "city"))}
    for level in ("county", "township", "village"):
        scopes[level] = s.scalar(select(Region.code).where(Region.level == level,
                                                          Region.code.startswith("511025")).order_by(Region.code))
    sample = s.scalars(select(Person).where(Person.region_code == scopes["village"]).limit(1)).one()
    from yikatong.core import crypto
    from yikatong.core.protect import reveal

    id_number = reveal(crypto.ID_NUMBER, sample.id_number_enc)
    print("| query | scope | p50 ms | p95 ms |\n| --- | --- | ---: | ---: |")
    for level, code in scopes.items():
        user = as_user(code)
        p50, p95 = timed(lambda u=user: service.region_summary(s, u), args.runs)
        print(f"| home-page counts (region_summary) | {level} | {p50:.1f} | {p95:.1f} |")
    for level, code in scopes.items():
        user = as_user(code)
        p50, p95 = timed(lambda u=user: service.search_persons(s, u, sample.name[:1]), args.runs)
        print(f"| search by surname, first page | {level} | {p50:.1f} | {p95:.1f} |")
    user = as_user(scopes["city"])
    p50, p95 = timed(lambda: service.search_persons(s, user, id_number), args.runs)
    print(f"| search by full ID number | city | {p50:.1f} | {p95:.1f} |")
    p50, p95 = timed(lambda: service.person_detail(s, as_user(scopes["village"]), sample.id), args.runs)
    print(f"| person page data | village | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
