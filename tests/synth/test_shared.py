"""The shared data sets of the synthetic city (synth.shared) agree with its people: generated for
the test city (committed by the session fixture, without bulk claims), read back from DuckDB."""

from __future__ import annotations

from datetime import date

import pytest

from yikatong.interception import engine as rule_engine
from yikatong.interception import rulefile
from yikatong.interception.snapshot import export_city
from yikatong.sharing.datasets import DATASETS
from yikatong.sharing.store import arrow_schema
from yikatong.synth import shared
from yikatong.synth.catalog_data import AGE_LIMITS, catalogue_rows, exclusion_rows
from yikatong.synth.shared import PENSION_LIMIT_FEN, VEHICLE_LIMIT_FEN

AS_OF = date(2026, 11, 30)
SEED = 7


@pytest.fixture(scope="module")
def ws(city):
    from yikatong.core.db import engine

    workspace = shared.open_workspace(engine(), SEED, AS_OF)
    workspace.counts = shared.generate(workspace)
    yield workspace
    workspace.close()


def test_every_data_set_has_rows_in_its_stored_columns(ws):
    for dataset in DATASETS:
        assert ws.counts[dataset.code] > 0, dataset.code
        columns = [d[0] for d in ws.con.execute(f"SELECT * FROM {dataset.code} LIMIT 0").description]
        assert columns == arrow_schema(dataset).names


def test_hukou_covers_every_person_with_the_same_name_and_village(ws):
    persons = ws.count("persons")
    assert ws.sql("SELECT count(DISTINCT h.id_hash) FROM hukou h JOIN persons p USING (id_hash)")[0][0] == persons
    assert ws.sql("SELECT count(*) FROM hukou h JOIN persons p USING (id_hash) "
                  "WHERE h.name <> p.name OR h.region_code <> p.region_code")[0][0] == 0
    # 正常, except the registry's dead, whose hukou is cancelled on the day of death
    bad = ws.sql("""SELECT count(*) FROM hukou h JOIN persons p USING (id_hash) LEFT JOIN deaths d USING (id_hash)
                    WHERE (d.id_hash IS NULL AND h.status <> '正常')
                       OR (d.id_hash IS NOT NULL AND (h.status <> '注销' OR h.moved_out_on <> d.death_date))""")
    assert bad[0][0] == 0
    # people who left or died in past years are there too, and nobody is in it twice
    assert ws.sql("SELECT count(*) FROM hukou WHERE id_hash NOT IN (SELECT id_hash FROM persons)")[0][0] > 0
    assert ws.sql("SELECT count(*) - count(DISTINCT id_hash) FROM hukou")[0][0] == 0


def test_the_card_registry_says_what_the_cards_table_says(ws):
    cards = ws.count("cards")
    latest = """SELECT card_number, status, id_hash FROM card_registry
                QUALIFY row_number() OVER (PARTITION BY card_number ORDER BY changed_on DESC) = 1"""
    assert ws.sql(f"SELECT count(*) FROM ({latest}) r JOIN cards c USING (card_number)")[0][0] == cards
    assert ws.sql(f"""SELECT count(*) FROM ({latest}) r JOIN cards c USING (card_number)
                      JOIN persons p ON p.person_id = c.person_id
                      WHERE r.status <> c.status OR r.id_hash <> p.id_hash""")[0][0] == 0
    assert ws.count("card_registry") > cards  # cards no longer active have a later row
    # no two rows of a card on the same day: the latest is never a tie
    assert ws.sql("SELECT count(*) FROM (SELECT card_number, changed_on FROM card_registry "
                  "GROUP BY ALL HAVING count(*) > 1)")[0][0] == 0


def test_wealth_and_salaries_only_for_people_without_a_means_tested_claim(ws):
    means = "SELECT p.id_hash FROM applications a JOIN items i USING (item_code) JOIN persons p USING (person_id) " \
            "WHERE i.means_tested"
    assert ws.sql("SELECT count(*) FROM people WHERE means > 0")[0][0] > 0  # there are such claims
    for query in (
        "SELECT id_hash FROM payroll",
        f"SELECT id_hash FROM retirees WHERE pension_fen > {PENSION_LIMIT_FEN}",
        f"SELECT id_hash FROM vehicles WHERE value_fen > {VEHICLE_LIMIT_FEN}",
        "SELECT id_hash FROM businesses WHERE status = '存续'",
        "SELECT id_hash FROM real_estate GROUP BY id_hash HAVING count(*) > 1",
    ):
        assert ws.sql(f"SELECT count(*) FROM ({query}) x WHERE id_hash IN ({means})")[0][0] == 0, query
        assert ws.sql(f"SELECT count(*) FROM ({query}) x")[0][0] > 0, query


def test_the_dead_in_custody_and_cadres_do_not_claim(ws):
    claimants = "SELECT p.id_hash FROM applications a JOIN persons p USING (person_id)"
    for table in ("deaths", "prisoners"):
        assert ws.sql(f"SELECT count(*) FROM {table} WHERE id_hash IN ({claimants})")[0][0] == 0
    assert ws.sql("SELECT count(*) FROM village_cadres v WHERE EXISTS (SELECT 1 FROM applications a "
                  "JOIN persons p USING (person_id) WHERE p.id_hash = v.id_hash "
                  "AND a.region_code = v.region_code)")[0][0] == 0
    # every cadre is listed once as 本人 in the village of the cadre's household
    assert ws.sql("SELECT count(*) FROM village_cadres v JOIN persons p USING (id_hash) "
                  "WHERE v.relation = '本人' AND (p.region_code <> v.region_code OR v.cadre_id_hash <> v.id_hash)"
                  )[0][0] == 0


def test_other_payments_never_overlap_a_live_claim_of_the_same_item(ws):
    assert ws.sql("""SELECT count(*) FROM other_payments o JOIN persons p USING (id_hash)
                     JOIN applications a ON a.person_id = p.person_id AND a.item_code = o.item_code
                     WHERE o.period_start <= a.period_end AND o.period_end >= a.period_start""")[0][0] == 0


def test_the_rules_find_nothing_in_clean_data(ws, city):
    """Every built-in rule over the test city's own (demo) applications and the clean data sets:
    no hit. Applications other tests committed are left out (their people are not in this data)."""
    from yikatong.core.db import engine

    first, last = city.application_ids
    snap = export_city(engine(), {})  # in memory: the test edits it
    try:
        for dataset in DATASETS:  # the workspace's tables instead of stored snapshots
            snap.con.execute(f"DROP VIEW {dataset.code}").fetchall()
            snap.con.register("generated", ws.arrow(f"SELECT * FROM {dataset.code}"))
            snap.con.execute(f"CREATE TABLE {dataset.code} AS SELECT *, 1::BIGINT AS snapshot_id FROM generated"
                             ).fetchall()
            snap.con.unregister("generated")
        # the city's own applications only (a copy in front of the exported table)
        snap.con.execute(f"CREATE TEMP TABLE applications AS SELECT * FROM applications "
                         f"WHERE application_id BETWEEN {first} AND {last}").fetchall()
        results = rule_engine.run_rules(snap, rulefile.builtin_rules())
    finally:
        snap.close()
    assert not [r.error for r in results if r.error]
    hits = {r.code: r.hits.num_rows for r in results if r.hits.num_rows}
    assert hits == {}


def test_same_seed_same_data_another_seed_other_data(ws, city):
    from yikatong.core.db import engine

    again = shared.open_workspace(engine(), SEED, AS_OF)
    other = shared.open_workspace(engine(), SEED + 1, AS_OF)
    try:
        shared.generate(again)
        shared.generate(other)
        for dataset in DATASETS:
            order = ", ".join(arrow_schema(dataset).names)
            query = f"SELECT * FROM {dataset.code} ORDER BY {order}"
            assert ws.arrow(query).equals(again.arrow(query)), dataset.code
        query = "SELECT * FROM payroll ORDER BY ALL"
        assert not ws.arrow(query).equals(other.arrow(query))
    finally:
        again.close()
        other.close()


def test_the_catalogue_has_age_limits_and_exclusive_pairs():
    _, items = catalogue_rows()
    by_code = {i["code"]: i for i in items}
    assert (by_code["SD001"]["min_age"], by_code["SD001"]["max_age"]) == (80, 89)  # 高龄津贴（80至89周岁）
    assert by_code["ZS029"]["min_age"] == 60 and by_code["ZS029"]["max_age"] is None  # 基础养老金
    assert sum(1 for i in items if i["min_age"] is not None or i["max_age"] is not None) == len(AGE_LIMITS)
    pairs = exclusion_rows(items)
    assert all(p["item_code"] < p["other_code"] for p in pairs)
    assert {"item_code": "ZS006", "other_code": "ZS007"} in [{k: p[k] for k in ("item_code", "other_code")}
                                                           for p in pairs]
    assert len({(p["item_code"], p["other_code"]) for p in pairs}) == len(pairs)
