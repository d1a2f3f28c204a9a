"""The payment loop at the size of a large batch, on SQLite or PostgreSQL: N beneficiaries with an active
card at one bank and N 已通过 applications of one item and period, then the services behind the pages and
`ykt pay`, each step in its own process (so its peak memory is its own):

    build (the pre-payment gate included) -> approve -> export -> bank-sim (every file) -> return (every
    file) -> statement + treasury (every file) -> reconcile

    python benchmarks/payment_loop.py --records 1000000                      # SQLite file in a scratch folder
    python benchmarks/payment_loop.py --records 1000000 --bank SCRCU \\
        --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres     # a fresh database, dropped after
    python benchmarks/payment_loop.py --records 100000 --profile build       # cProfile of one step

Setup (not a measured step, timed all the same): migrations, the small synthetic city without claims or
shared data (catalog, regions, banks, treasury accounts, demo users), a monthly per-person item with its
standard, a second finance user (the checker), a budget, then the N people, cards and applications by bulk
inserts. Each step prints its time (the service call and the commit, in the child process) and the child's
peak resident memory (resource.getrusage ru_maxrss: the whole process, imports included; on PostgreSQL
the server's own memory is not in it)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
PERIOD = "2026-11"
ITEM = "PAYBENCH"
STANDARD_FEN = 50_000
CHECKER = "bench_checker"
STEPS = ("build", "approve", "export", "sim", "return", "book", "reconcile")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉文辉春梅德金凤"


# ---------------------------------------------------------------- setup (a child process too)


def setup(state: dict) -> dict:
    from sqlalchemy import select, text

    from yikatong.catalog.models import Bank, ItemStandard, SubsidyItem
    from yikatong.core.db import bulk_insert, engine, new_session, transaction
    from yikatong.core.migrate import upgrade
    from yikatong.core.protect import protect
    from yikatong.disbursement import budget
    from yikatong.registry.models import Card, CardStatus, Person
    from yikatong.security.models import User
    from yikatong.security.roles import Role
    from yikatong.security.service import create_user
    from yikatong.synth.city import build_city
    from yikatong.workflow import service as workflow
    from yikatong.workflow.models import Application, Source, Status

    n, bank_code = state["records"], state["bank"]
    times: dict[str, float] = {}
    t = time.perf_counter()
    upgrade()
    build_city(engine(), scale=0.002, seed=7, claims=False, shared_data=False)
    times["migrate + small city"] = time.perf_counter() - t

    t = time.perf_counter()
    with transaction() as s:
        like = s.get(SubsidyItem, "ZS007")
        s.add(SubsidyItem(code=ITEM, name="基准测试发放项目", category_code=like.category_code, funding_level="市",
                          department_code=like.department_code, basis="人", standard_fen=STANDARD_FEN, frequency="月",
                          village_publicity=False, means_tested=False, description=""))
        s.flush()
        s.add(ItemStandard(item_code=ITEM, valid_from=date(2000, 1, 1), county_code=None, standard_fen=STANDARD_FEN,
                           reason="基准测试", created_by_name="基准测试", created_at=NOW))
        region = s.scalar(select(User.region_code).where(User.username == "city_finance"))
        create_user(s, CHECKER, "ykt-bench-2026", Role.CITY_FINANCE, region, "市财政局 复核员", NOW)
        budget.set_allocations(s, None, [budget.AllocationInput(ITEM, 2026, "市", STANDARD_FEN * n * 2, "基准测试")],
                               NOW)
        village = s.scalar(select(User.region_code).where(User.username == "village_clerk"))
        prefix = s.get(Bank, bank_code).account_prefix
        first_person = s.scalar(select(Person.id).order_by(Person.id.desc()).limit(1)) + 1
        first_app = (s.scalar(select(Application.id).order_by(Application.id.desc()).limit(1)) or 0) + 1
    # one application through the counter's code path: the model for the N cloned below
    with new_session() as s:  # rolled back: only its row's values are kept
        clerk = s.scalar(select(User).where(User.username == "village_clerk"))
        pid = s.scalar(select(Person.id).where(Person.region_code == village).order_by(Person.id).limit(1))
        prepared = workflow.prepare_claims(s, clerk, [workflow.Claim(ref=1, person_id=pid, item_code=ITEM,
                                                                     period=PERIOD)], Source.COUNTER, NOW)
        assert not prepared.errors, prepared.errors
        [model_id] = workflow.enter_claims(s, clerk, prepared, Source.COUNTER, NOW, screen=False)
        model = {c.name: getattr(s.get(Application, model_id), c.key)
                 for c in Application.__table__.columns}
        s.rollback()
    times["catalog, users, budget"] = time.perf_counter() - t

    rng = random.Random(1)
    id_enc = protect("id_number", "511002195001010011")
    step = 100_000
    t = time.perf_counter()
    for start in range(0, n, step):
        stop = min(n, start + step)
        persons, cards, apps = [], [], []
        for i in range(start, stop):
            pid = first_person + i
            birth = date(1950 + i % 40, 1 + i % 12, 1 + i % 28)
            persons.append(dict(id=pid, id_number_enc=id_enc.enc, id_number_hash=f"bench{i:027d}",
                                id_number_masked=id_enc.masked,
                                name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                                gender="男" if i % 2 else "女", birth_date=birth, region_code=village,
                                is_beneficiary=True, has_active_card=True, created_at=NOW, updated_at=NOW))
            account = protect("bank_account", f"{prefix}{800000000 + i:011d}")
            cards.append(dict(card_number=f"BN{i:012d}", person_id=pid, bank_code=bank_code,
                              bank_account_enc=account.enc, bank_account_hash=account.hash,
                              bank_account_masked=account.masked, status=CardStatus.ACTIVE.value,
                              issued_on=date(2020, 1, 1), created_at=NOW, updated_at=NOW))
            app = dict(model)
            app.update(id=first_app + i, number=f"BENCH{i:012d}", person_id=pid, status=Status.APPROVED.value,
                       stage=None, owner_region=None, household_id=None, decided_at=NOW, due_on=None,
                       remind_on=None)
            apps.append(app)
        with transaction() as s:
            bulk_insert(s, Person.__table__, persons)
            bulk_insert(s, Card.__table__, cards)
            bulk_insert(s, Application.__table__, apps)
        print(f"  setup: {stop:,} people, cards and applications", flush=True)
    with transaction() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT setval(pg_get_serial_sequence('persons', 'id'), (SELECT max(id) FROM persons))"))
            s.execute(text("SELECT setval(pg_get_serial_sequence('applications', 'id'), "
                           "(SELECT max(id) FROM applications))"))
    times["people, cards, applications"] = time.perf_counter() - t
    t = time.perf_counter()
    with engine().connect() as c:  # fresh statistics, as after a night's maintenance
        c.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    times["ANALYZE"] = time.perf_counter() - t
    return {"times": {k: round(v, 1) for k, v in times.items()}}


# ---------------------------------------------------------------- the measured steps


def _user(s, username: str):
    from sqlalchemy import select

    from yikatong.security.models import User

    return s.scalar(select(User).where(User.username == username))


def run_step(name: str, state: dict) -> dict:
    from yikatong.core.db import transaction
    from yikatong.disbursement import exchange, reconcile, service

    folder = Path(state["folder"])
    if name == "build":
        with transaction() as s:
            result = service.build_batch(s, _user(s, "city_finance"), item_code=ITEM, period=PERIOD,
                                         bank_code=state["bank"], now=NOW)
            assert result.batch is not None, result.message()
            state["batch"] = result.batch.id
            return {"orders": result.batch.order_count, "excluded": len(result.excluded),
                    "message": result.message()}
    if name == "approve":
        with transaction() as s:
            batch = service.approve_batch(s, _user(s, CHECKER), state["batch"], NOW)
            return {"status": batch.status}
    if name == "export":
        with transaction() as s:
            files = exchange.export_batch(s, _user(s, "city_finance"), state["batch"], NOW)
            out = exchange.bank_dir() / service.get_batch(s, None, state["batch"]).number
            state["batch_files"] = [str(out / f.name) for f in files]
            return {"files": len(files), "MB": round(sum((out / f.name).stat().st_size for f in files) / 1e6)}
    if name == "sim":
        from yikatong.disbursement.bank.sim import simulate

        answers = folder / "answers"
        state["returns"], state["statements"], state["treasury"] = [], [], []
        failed = 0
        for path in state["batch_files"]:
            r = simulate(Path(path), answers, 0.0005, 1)
            state["returns"].append(str(r.return_file.path))
            state["statements"].append(str(r.statement_file.path))
            state["treasury"].append(str(r.treasury_file.path))
            failed += r.failed
        return {"failed": failed}
    if name == "return":
        paid = failed = 0
        for path in state["returns"]:
            with transaction() as s:
                r = exchange.import_return(s, _user(s, "city_finance"), state["batch"], Path(path), NOW)
            exchange.remove_files(r.to_remove)
            paid, failed = paid + r.paid, failed + r.failed
        return {"files": len(state["returns"]), "paid": paid, "failed": failed}
    if name == "book":
        lines = 0
        seconds = {"statement": 0.0, "treasury": 0.0}
        for kind, paths in (("statement", state["statements"]), ("treasury", state["treasury"])):
            t = time.perf_counter()
            for path in paths:
                with transaction() as s:
                    if kind == "statement":
                        r = exchange.import_statement(s, _user(s, "city_finance"), state["batch"], Path(path), NOW)
                    else:
                        r = exchange.import_treasury(s, _user(s, "city_finance"), Path(path), NOW)
                    lines += r.lines
            seconds[kind] = round(time.perf_counter() - t, 2)
        return {"lines": lines, **seconds}
    if name == "reconcile":
        with transaction() as s:
            run = reconcile.reconcile_batch(s, _user(s, "city_finance"), state["batch"], NOW)
            return {"balanced": run.balanced, "differences": run.differences, "summary": reconcile.summary(run)}
    raise SystemExit(f"unknown step {name}")


def child(args: argparse.Namespace) -> None:
    state_file = Path(args.state)
    state = json.loads(state_file.read_text())
    # the imports and the key's derivation before the clock starts: a running server has them already
    from yikatong.core import crypto
    from yikatong.disbursement import exchange, reconcile, service  # noqa: F401
    from yikatong.disbursement.bank import sim  # noqa: F401

    crypto.cipher()
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    detail = setup(state) if args.step == "setup" else run_step(args.step, state)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    state_file.write_text(json.dumps(state))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if profiler:
        import pstats

        out = Path(state["folder"]) / f"{args.step}.prof"
        profiler.dump_stats(out)
        pstats.Stats(str(out), stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    print("RESULT " + json.dumps({"step": args.step, "seconds": round(seconds, 2), "peak_mb": round(peak_mb),
                                  "detail": detail}, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------- the driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--bank", default="PSBC", help="ABC (fixed width), PSBC (delimited), SCRCU (ISO 20022)")
    parser.add_argument("--database", help="a PostgreSQL server URL: a fresh database is made there and dropped")
    parser.add_argument("--profile", action="append", default=[], help="cProfile this step (repeatable)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per measured step (setup: no limit)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (and PostgreSQL database)")
    parser.add_argument("--steps", default=",".join(STEPS), help="stop after the last step listed")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--cprofile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args)
        return

    folder = Path(tempfile.mkdtemp(prefix="ykt-paybench-"))
    url = f"sqlite:///{folder / 'pay.db'}"
    if args.database:
        from yikatong.core.db import create_database

        url = create_database(args.database, "ykt_paybench")
    env = dict(os.environ, YKT_DATABASE_URL=url, YKT_DATA_DIR=str(folder / "data"),
               YKT_BANK_DIR=str(folder / "bank"), YKT_SECRET_KEY=os.environ.get("YKT_SECRET_KEY", "paybench-key"))
    state_file = folder / "state.json"
    state_file.write_text(json.dumps({"records": args.records, "bank": args.bank, "folder": str(folder)}))
    wanted = args.steps.split(",")
    print(f"payment loop: {args.records:,} records, bank {args.bank}, {url.split('@')[-1]}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    try:
        for step in ("setup",) + STEPS[:STEPS.index(wanted[-1]) + 1]:
            cmd = [sys.executable, __file__, "--step", step, "--state", str(state_file)]
            if step in args.profile:
                cmd.append("--cprofile")
            wall = time.perf_counter()
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                      timeout=None if step == "setup" else args.timeout)
            except subprocess.TimeoutExpired:
                print(f"  {step:<10} stopped after {args.timeout} s (--timeout): the later steps need it", flush=True)
                break
            wall = time.perf_counter() - wall
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr)
                raise SystemExit(f"step {step} failed")
            if step in args.profile:
                print(proc.stderr)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            result = json.loads(line[7:])
            results.append(result)
            print(f"  {step:<10} {result['seconds']:8.2f} s  (process {wall:6.1f} s)  peak RSS "
                  f"{result['peak_mb']:6,} MB  {json.dumps(result['detail'], ensure_ascii=False)}", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            if args.database:
                from yikatong.core.db import drop_database

                drop_database(url)
        else:
            print(f"kept: {folder} {url}")


if __name__ == "__main__":
    main()
