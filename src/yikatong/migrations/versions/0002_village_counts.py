"""Per-village counts kept by triggers, so a city's home page sums 2,000 rows instead of 3 million.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Triggers on persons keep village_counts exact inside the writing transaction, whoever writes
(imports, the synthetic city, later the card and payment services), on SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTS = ("persons", "beneficiaries", "beneficiaries_with_card", "card_holders")


def _terms(row: str) -> tuple[str, str, str, str]:
    """The four counts one person row contributes, as SQL expressions (0 or 1 each)."""
    if op.get_bind().dialect.name == "postgresql":
        ben = f"{row}.is_beneficiary::int"
        card = f"{row}.has_active_card::int"
        return "1", ben, f"({row}.is_beneficiary AND {row}.has_active_card)::int", card
    return "1", f"{row}.is_beneficiary", f"({row}.is_beneficiary AND {row}.has_active_card)", f"{row}.has_active_card"


def _add(row: str) -> str:
    values = ", ".join(_terms(row))
    sets = ", ".join(f"{c} = village_counts.{c} + excluded.{c}" for c in COUNTS)
    return (f"INSERT INTO village_counts (region_code, {', '.join(COUNTS)}) VALUES ({row}.region_code, {values}) "
            f"ON CONFLICT (region_code) DO UPDATE SET {sets};")


def _subtract(row: str) -> str:
    sets = ", ".join(f"{c} = {c} - {t}" for c, t in zip(COUNTS, _terms(row), strict=True))
    return f"UPDATE village_counts SET {sets} WHERE region_code = {row}.region_code;"


def upgrade() -> None:
    op.create_table(
        "village_counts",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False, server_default="0") for c in COUNTS),
        sa.PrimaryKeyConstraint("region_code", name=op.f("pk_village_counts")),
    )
    watched = "region_code, is_beneficiary, has_active_card"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION ykt_village_counts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP IN ('UPDATE', 'DELETE') THEN {_subtract('OLD')} END IF;
              IF TG_OP IN ('UPDATE', 'INSERT') THEN {_add('NEW')} END IF;
              RETURN NULL;
            END $$""")
        op.execute("CREATE TRIGGER persons_village_counts_ins_del AFTER INSERT OR DELETE ON persons "
                   "FOR EACH ROW EXECUTE FUNCTION ykt_village_counts()")
        op.execute(f"CREATE TRIGGER persons_village_counts_upd AFTER UPDATE OF {watched} ON persons "
                   "FOR EACH ROW EXECUTE FUNCTION ykt_village_counts()")
    else:
        op.execute(f"CREATE TRIGGER persons_village_counts_ins AFTER INSERT ON persons BEGIN {_add('NEW')} END")
        op.execute(f"CREATE TRIGGER persons_village_counts_del AFTER DELETE ON persons BEGIN {_subtract('OLD')} END")
        op.execute(f"CREATE TRIGGER persons_village_counts_upd AFTER UPDATE OF {watched} ON persons "
                   f"BEGIN {_subtract('OLD')} {_add('NEW')} END")
    # Count what is already there (an existing database upgraded in place).
    op.execute(f"""INSERT INTO village_counts (region_code, {', '.join(COUNTS)})
        SELECT p.region_code, {', '.join(f'SUM({t})' for t in _terms('p'))} FROM persons p GROUP BY p.region_code""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS persons_village_counts_ins_del ON persons")
        op.execute("DROP TRIGGER IF EXISTS persons_village_counts_upd ON persons")
        op.execute("DROP FUNCTION IF EXISTS ykt_village_counts()")
    else:
        for name in ("ins", "del", "upd"):
            op.execute(f"DROP TRIGGER IF EXISTS persons_village_counts_{name}")
    op.drop_table("village_counts")
