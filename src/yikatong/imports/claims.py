"""Department lists (补贴申请名单): each valid row becomes one application, entered at the item's
list station through the same checks as a claim at the village counter or over the API.

A list is all or nothing like every import. Applications are not upserted: a row whose person
already has a live claim for the item and period is an error, so importing the same list twice
enters nothing the second time and says why on every row."""

from __future__ import annotations

from sqlalchemy import text

from yikatong.imports.batch import Batch, Plan, Progress
from yikatong.workflow.models import Source
from yikatong.workflow.service import Claim, enter_claims, prepare_claims

ANALYZE_AFTER = 1000  # applications entered


def list_source_ref(sha256: str) -> str:
    """What an application entered from a list records as its source: the file's hash."""
    return f"file:{sha256[:16]}"


def plan_applications(b: Batch) -> Plan:
    claims = [
        Claim(ref=row.number, id_number=row.values["id_number"].number, name=row.values["name"],
              item_code=row.values["item_code"], period=row.values["period"],
              quantity=row.values.get("quantity"), note=row.values.get("note", ""))
        for row in b.rows if not row.bad
    ]
    b.progress("核对", 0, len(claims))
    prepared = prepare_claims(b.session, b.actor, claims, Source.LIST, b.now)
    b.progress("核对", len(claims), len(claims))
    rows = {row.number: row for row in b.rows}
    for e in prepared.errors:
        b.error(rows[e.ref], e.field, e.reason)
    if b.error_count:
        return Plan()

    def write(progress: Progress) -> None:
        enter_claims(b.session, b.actor, prepared, Source.LIST, b.now, source_ref=list_source_ref(b.sha256),
                     on_progress=progress)
        # PostgreSQL plans the next list's live-claim look-up from statistics: refresh them after a
        # large insert (see imports.upserts._refresh_statistics).
        if len(prepared.rows) >= ANALYZE_AFTER and b.session.get_bind().dialect.name == "postgresql":
            b.session.execute(text("ANALYZE applications"))
            b.session.execute(text("ANALYZE review_records"))

    return Plan(added=len(prepared.rows), write=write)
