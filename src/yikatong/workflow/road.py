"""The road an item's applications travel: which stations, in which order, with which deadlines,
and who acts at each station."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.catalog.models import SubsidyItem
from yikatong.core.db import savepoint
from yikatong.core.errors import Invalid, NotFound
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.workflow.models import Application, RoadStep, Status, Step

ORDER = [Step.VILLAGE, Step.PUBLICITY, Step.TOWNSHIP, Step.COUNTY, Step.CITY]

# Default deadlines: working days for a decision; for 公示 the calendar days of the window.
DEFAULT_DAYS = {Step.VILLAGE: 5, Step.PUBLICITY: 7, Step.TOWNSHIP: 5, Step.COUNTY: 10, Step.CITY: 5}
DEFAULT_REMIND_BEFORE = 1
DEFAULT_LIST_ENTRY = Step.COUNTY
PUBLISH_WITHIN = 2  # working days the village has to put an evaluated application on a publicity list

# Who acts at each station, and the level of the region whose staff that is (digits of the code).
STEP_ROLE = {
    Step.VILLAGE: Role.VILLAGE_CLERK,
    Step.PUBLICITY: Role.VILLAGE_CLERK,
    Step.TOWNSHIP: Role.TOWNSHIP_REVIEWER,
    Step.COUNTY: Role.COUNTY_HANDLER,
    Step.CITY: Role.CITY_FINANCE,
}
_OWNER_DIGITS = {Step.VILLAGE: 12, Step.PUBLICITY: 12, Step.TOWNSHIP: 9, Step.COUNTY: 6, Step.CITY: 4}
ROLE_STEPS = {role: [s for s, r in STEP_ROLE.items() if r is role] for role in set(STEP_ROLE.values())}


def owner_digits(step: Step | str) -> int:
    """How many leading digits of a claim's village code name the region that owns `step`."""
    return _OWNER_DIGITS[Step(step)]


def owner_region(step: Step | str, village_code: str) -> str:
    """The region whose staff act at `step` for a claim of `village_code`."""
    return village_code[: _OWNER_DIGITS[Step(step)]].ljust(12, "0")


@dataclass(frozen=True)
class Station:
    step: Step
    days: int
    remind_before: int
    list_entry: bool


@dataclass(frozen=True)
class Road:
    item_code: str
    stations: tuple[Station, ...]

    @property
    def steps(self) -> list[Step]:
        return [s.step for s in self.stations]

    def station(self, step: Step | str) -> Station:
        for s in self.stations:
            if s.step == step:
                return s
        raise Invalid(f"项目{self.item_code}的审核流程不含“{step}”环节")

    def first(self) -> Step:
        return self.stations[0].step

    def list_entry(self) -> Step:
        return next((s.step for s in self.stations if s.list_entry), self.stations[-1].step)

    def after(self, step: Step | str) -> Step | None:
        """The next station, or None when `step` is the last (the application is approved)."""
        steps = self.steps
        index = steps.index(Step(step))
        return steps[index + 1] if index + 1 < len(steps) else None

    def earlier_decisions(self, step: Step | str) -> list[Step]:
        """Stations an application at `step` can be returned to for correction (not 公示: publicity
        fixes nothing)."""
        steps = self.steps
        return [s for s in steps[: steps.index(Step(step))] if s is not Step.PUBLICITY]


def default_road(item: SubsidyItem) -> Road:
    steps = [s for s in ORDER if item.village_publicity or s is not Step.PUBLICITY]
    return Road(item.code, tuple(Station(s, DEFAULT_DAYS[s], DEFAULT_REMIND_BEFORE, s is DEFAULT_LIST_ENTRY)
                                 for s in steps))


def road_for(session: Session, item: SubsidyItem) -> Road:
    rows = session.scalars(select(RoadStep).where(RoadStep.item_code == item.code).order_by(RoadStep.position)).all()
    if not rows:
        return default_road(item)
    return Road(item.code, tuple(Station(Step(r.step), r.working_days, r.remind_days_before, r.list_entry)
                                 for r in rows))


def configure_road(session: Session, item: SubsidyItem, stations: list[Station]) -> Road:
    """Replace an item's road. Stations keep the fixed order of the five levels; 市管 may not be
    skipped (the city finance bureau manages every payment) and at most one station takes lists."""
    if not stations:
        raise Invalid("审核流程至少要有一个环节")
    steps = [s.step for s in stations]
    if Step.APPLY in steps:
        raise Invalid("“户报”是申请本身，不是审核环节")
    if len(set(steps)) != len(steps):
        raise Invalid("审核环节不能重复")
    if steps != sorted(steps, key=ORDER.index):
        raise Invalid("审核环节须按 村评→公示→镇审→县定→市管 的顺序")
    if steps[-1] is not Step.CITY:
        raise Invalid("每个项目都须经“市管”环节")
    if Step.PUBLICITY in steps and Step.VILLAGE not in steps:
        raise Invalid("“公示”须在“村评”之后")
    if sum(s.list_entry for s in stations) > 1:
        raise Invalid("只能有一个环节接收部门名单")
    for s in stations:
        if not 1 <= s.days <= 90:
            raise Invalid(f"“{s.step}”环节时限应为1至90天")
        if not 0 <= s.remind_before < s.days:
            raise Invalid(f"“{s.step}”环节提前提醒天数应小于时限")
    for row in session.scalars(select(RoadStep).where(RoadStep.item_code == item.code)).all():
        session.delete(row)
    session.flush()
    for position, s in enumerate(stations):
        session.add(RoadStep(item_code=item.code, step=s.step.value, position=position, working_days=s.days,
                             remind_days_before=s.remind_before, list_entry=s.list_entry))
    session.flush()
    return Road(item.code, tuple(stations))


# ---------------------------------------------------------------- changing a road (page and `ykt road set`)


def get_item(session: Session, code: str) -> SubsidyItem:
    item = session.get(SubsidyItem, code.strip())
    if item is None:
        raise NotFound(f"补贴项目“{code}”不存在")
    return item


def is_configured(session: Session, item: SubsidyItem) -> bool:
    return session.scalar(select(RoadStep.step).where(RoadStep.item_code == item.code).limit(1)) is not None


def waiting_by_station(session: Session, item: SubsidyItem) -> dict[str, int]:
    """Applications of the item now waiting at each station."""
    return dict(session.execute(select(Application.stage, func.count()).where(
        Application.item_code == item.code, Application.status == Status.OPEN.value)
        .group_by(Application.stage)).all())


def road_rows(road: Road) -> list[dict]:
    return [{"step": s.step.value, "days": s.days, "remind_before": s.remind_before, "list_entry": s.list_entry}
            for s in road.stations]


def change_road(session: Session, item: SubsidyItem, stations: list[Station], actor: User | None, now,
                ip: str = "") -> tuple[Road, Road]:
    """Replace the item's road (checked by configure_road) and audit the change. A station that
    applications still wait at cannot be dropped: they would have nowhere to be decided."""
    before = road_for(session, item)
    with savepoint(session):  # refused: the item keeps its road
        after = configure_road(session, item, stations)  # the road itself first, then what waits on it
        kept = set(after.steps)
        waiting = {stage: n for stage, n in waiting_by_station(session, item).items()
                   if stage and Step(stage) not in kept}
        if waiting:
            listed = "、".join(f"“{stage}”{n}件" for stage, n in sorted(waiting.items(),
                                                                      key=lambda t: ORDER.index(t[0])))
            raise Invalid(f"还有在办申请停在要删除的环节（{listed}），请办结后再删除这些环节")
    audit.record(session, actor, "road.configure", "subsidy_item", item.code, now, ip=ip,
                 detail={"before": road_rows(before), "after": road_rows(after)})
    session.flush()
    return before, after
