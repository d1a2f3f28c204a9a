"""Demo applications (演示申请): the synthetic city comes with applications in every state, so a
newcomer logging in as any role finds real work waiting.

The demo area -- the two demo villages, their township, 资中县 and the city -- gets a fixed set of
stories, one application each, walked through the real services (`accept`, `decide`, `publish`,
`raise_objection`, `resolve_objection`, `correct`, `withdraw`, and `close_ended` as the worker runs
it every night) with a clock that this module moves forward. Every other village gets a couple of
claims entered in bulk (`prepare_claims` + `enter_claims`), at the village counter or on a county
department's list, so that the city-wide pages (city finance, the supervisor, the overdue board)
have a city to show. A few of 资中县's civil-affairs list claims are then decided by the demo county
handler and city finance, so there is work at 市管 and money approved beyond the demo villages.
The claims are entered without screening (`screen=False`): the build runs every rule over the whole
city at the end (synth.city), which is one set-based run instead of a screen per story.

Dates. The people are dated relative to a fixed day (people.REFERENCE_DATE), so the same seed gives
the same city. Deadlines cannot be: a demo is looked at days or weeks after it is built, and an
inbox dated from a fixed day in the past would be all overdue, its publicity windows long closed.
So applications are dated backwards from the *demo day* (`today`: by default the day of the build;
`ykt demo` rebuilds on every start), in working days of the calendar: on the demo day some stations
are overdue, some are due on the next working day, one publicity list per demo village is open.
Everything else is drawn from the seed alone -- who applies, for which item and quantity, which
story, the opinions and objections, the ids -- so two builds with the same scale and seed differ
only in dates, in periods (the period is the one the application date falls in) and in application
numbers (they contain the date). Eligibility uses ages at REFERENCE_DATE for the same reason.

The demo area never uses the items the test suite claims for its own people (TEST_ITEMS), and puts
the applications waiting to be published only in the second demo village: the first demo village's
clerk publishes in tests and expects to find only the test's own applications waiting.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.core.clock import beijing_at, beijing_date
from yikatong.registry.documents import store_document
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.synth.names import NamePicker
from yikatong.synth.numbers import mobile_number
from yikatong.synth.people import REFERENCE_DATE
from yikatong.synth.regions import CityPlan, Village
from yikatong.workflow import publicity, service
from yikatong.workflow import road as roads
from yikatong.workflow.calendar import WorkCalendar, load_calendar
from yikatong.workflow.models import Action, Application, Source, Step
from yikatong.workflow.periods import period_of
from yikatong.workflow.road import Road

DEMO_COUNTY = "511025"  # 资中县: the county of the demo users
# Items the test suite claims for people of the demo villages (tests/workflow/conftest.py `claimant`):
# the demo stories leave them alone there, so those people stay free for the tests.
TEST_ITEMS = frozenset({"ZS007", "ZS001", "ZS014", "ZS002", "ZS017"})
# The spread over every other village: about two claims each, and one village in five quiet (none
# open), as real villages are; tests of the electronic eye pick a quiet village to watch.
CLAIMS_PER_VILLAGE = ((0, 0.2), (1, 0.15), (2, 0.3), (3, 0.2), (4, 0.15))
PEOPLE_PER_VILLAGE = 80  # candidates read per village for the spread
SOURCE_REF = "synth:demo"
WORKER_AT = time(0, 30)  # Beijing time: the nightly close of ended publicity windows (publicity.close_ended)
TEXT = "text/plain; charset=utf-8"


# ---------------------------------------------------------------- who may claim what


@dataclass(frozen=True)
class Candidate:
    """A resident as the generator sees them (age at REFERENCE_DATE, see the module docstring)."""

    id: int
    name: str
    age: int
    male: bool
    head: bool  # 户主
    beneficiary: bool


@dataclass(frozen=True)
class ItemRule:
    code: str
    who: Callable[[Candidate], bool]
    where: str = "any"  # community (社区) / rural (村) / any
    mu: tuple[int, int] | None = None  # plausible area in centi-mu, for items paid by the mu
    weight: int = 1  # how often the spread picks it

    def fits(self, c: Candidate, community: bool) -> bool:
        if self.where == "community" and not community or self.where == "rural" and community:
            return False
        return self.who(c)


def _ages(lo: int, hi: int = 200) -> Callable[[Candidate], bool]:
    return lambda c: lo <= c.age <= hi


_ADULT = _ages(18)
_BENEFICIARY = lambda c: c.beneficiary  # noqa: E731
_HEAD = lambda c: c.head  # noqa: E731

# Civil affairs (民政), publicised: what the demo county handler (资中县民政局) decides.
CIVIL = [
    ItemRule("ZS006", _BENEFICIARY, "community"),  # 城市低保
    ItemRule("ZS007", _BENEFICIARY, "rural"),  # 农村低保
    ItemRule("SD001", _ages(80, 88)),  # 高龄津贴（80至89周岁）; 88: still under 90 on the demo day
    ItemRule("SD002", _ages(90, 98)),  # 高龄津贴（90至99周岁）
    ItemRule("ZS008", lambda c: c.beneficiary and c.age >= 60),  # 特困人员救助供养金
    ItemRule("SD004", lambda c: c.beneficiary and c.age >= 65),  # 经济困难老年人养老服务补贴
    ItemRule("SD008", _ADULT),  # 低保边缘家庭生活补助
    ItemRule("ZS024", _ADULT),  # 临时救助: hardship can strike anyone
    ItemRule("SD006", _BENEFICIARY),  # 困难群众春节慰问金
]
# Publicised items of other sectors: at 县定 they wait for departments without a demo login.
OTHER = [
    ItemRule("ZS011", _BENEFICIARY),  # 重度残疾人护理补贴（残联）
    ItemRule("SD022", _ages(40, 68)),  # 独生子女父母奖励（卫生健康）
    ItemRule("ZS019", lambda c: c.male and c.age >= 45),  # 重点优抚对象抚恤补助（退役军人事务）
    ItemRule("SD035", _ages(35, 58), "community"),  # 城镇公益性岗位补贴（人社）
    ItemRule("SD067", _HEAD, "community"),  # 城镇住房保障家庭租赁补贴（住建，按户）
    ItemRule("SD080", _ADULT),  # 受灾群众冬春生活救助（应急管理）
]
# Not publicised: the road goes 村评 -> 镇审 directly.
UNPUBLISHED = [
    ItemRule("ZS029", _ages(60)),  # 城乡居民基础养老金
    ItemRule("SD036", _ages(60)),  # 城乡居民基础养老金地方加发
    ItemRule("SD040", _ages(18, 55)),  # 职业技能培训补贴
    ItemRule("SD074", _BENEFICIARY),  # 城乡居民医保参保缴费资助
    ItemRule("SD085", _ages(18, 58)),  # 困难职工帮扶救助金
]
KINDS: dict[str, list[ItemRule]] = {
    "civil": CIVIL, "other": OTHER, "unpublished": UNPUBLISHED, "publicised": CIVIL + OTHER,
    "any": CIVIL + OTHER + UNPUBLISHED,
}

# The spread: typical claims of a village (村) and of a street community (社区).
RURAL_SPREAD = [
    ItemRule("ZS007", _BENEFICIARY, weight=3),
    ItemRule("ZS001", _HEAD, mu=(120, 850), weight=3),  # 耕地地力保护补贴: contracted land, 1.2-8.5 mu
    ItemRule("ZS014", _HEAD, mu=(300, 4500)),  # 森林生态效益补偿: 3-45 mu of public-benefit forest
    ItemRule("ZS004", _HEAD, mu=(100, 600)),  # 稻谷目标价格补贴: 1-6 mu of rice
    ItemRule("SD001", _ages(80, 88), weight=2),
    ItemRule("ZS029", _ages(60), weight=2),
    ItemRule("ZS027", _HEAD),  # 能繁母猪补贴（按户）
    ItemRule("ZS011", _BENEFICIARY),
]
COMMUNITY_SPREAD = [
    ItemRule("ZS006", _BENEFICIARY, weight=3),
    ItemRule("SD001", _ages(80, 88), weight=2),
    ItemRule("ZS029", _ages(60), weight=3),
    ItemRule("SD067", _HEAD),
    ItemRule("ZS011", _BENEFICIARY),
    ItemRule("SD035", _ages(35, 58)),
]


def age_at_reference(birth: date) -> int:
    return REFERENCE_DATE.year - birth.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (birth.month, birth.day))


# ---------------------------------------------------------------- the stories of the demo area


@dataclass
class Story:
    """One demo application and where it must stand on the demo day."""

    village: str
    clerk: User
    goal: str  # wait / approved / payable / rejected / withdrawn / returned / corrected / publicity / to_publish
    kind: str = "any"  # which items fit: civil / other / unpublished / any
    stage: Step | None = None  # wait, rejected, withdrawn: the station
    due: str = ""  # wait: overdue / next (the next working day) / fresh
    objection: str = ""  # publicity: "" / open / dismissed / upheld
    item: SubsidyItem | None = None
    person: Candidate | None = None
    road: Road | None = None
    app: Application | None = None
    minute: int = 0  # the story's own minute of the hour, so no two stories collide

    def fallback(self) -> str | None:
        """The items to try when none of the story's own kind fits anyone (a tiny city): none when
        the demo county handler (民政) must decide it at 县定, publicised ones for publicity."""
        if (self.kind == "unpublished" or self.goal in ("approved", "payable")
                or self.goal == "wait" and self.stage is Step.CITY
                or self.goal == "rejected" and self.stage is Step.COUNTY):
            return None
        return "publicised" if self.goal in ("publicity", "to_publish") else "any"


def _stories(first: str, second: str, clerk: User, clerk2: User) -> list[Story]:
    v1 = [
        Story(first, clerk, "approved", "civil"),
        Story(first, clerk, "payable", "civil"),
        Story(first, clerk, "wait", "civil", Step.CITY, "overdue"),
        Story(first, clerk, "wait", "civil", Step.CITY, "fresh"),
        Story(first, clerk, "wait", "civil", Step.COUNTY, "overdue"),
        Story(first, clerk, "wait", "civil", Step.COUNTY, "next"),
        Story(first, clerk, "wait", "civil", Step.COUNTY, "fresh"),
        Story(first, clerk, "wait", "other", Step.COUNTY, "overdue"),
        Story(first, clerk, "wait", "other", Step.COUNTY, "fresh"),
        Story(first, clerk, "wait", "any", Step.TOWNSHIP, "overdue"),
        Story(first, clerk, "wait", "unpublished", Step.TOWNSHIP, "next"),
        Story(first, clerk, "wait", "any", Step.TOWNSHIP, "fresh"),
        Story(first, clerk, "publicity", "civil", objection="open"),
        Story(first, clerk, "publicity", "civil", objection="dismissed"),
        Story(first, clerk, "publicity", "civil"),
        Story(first, clerk, "publicity", "civil", objection="upheld"),
        Story(first, clerk, "wait", "any", Step.VILLAGE, "fresh"),
        Story(first, clerk, "wait", "any", Step.VILLAGE, "next"),
        Story(first, clerk, "wait", "any", Step.VILLAGE, "overdue"),
        Story(first, clerk, "returned", "any"),
        Story(first, clerk, "corrected", "any"),
        Story(first, clerk, "rejected", "civil", Step.VILLAGE),
        Story(first, clerk, "rejected", "civil", Step.COUNTY),
        Story(first, clerk, "withdrawn", "any", Step.VILLAGE),
    ]
    v2 = [
        Story(second, clerk2, "approved", "civil"),
        Story(second, clerk2, "wait", "civil", Step.CITY, "next"),
        Story(second, clerk2, "wait", "civil", Step.COUNTY, "overdue"),
        Story(second, clerk2, "wait", "other", Step.COUNTY, "next"),
        Story(second, clerk2, "wait", "any", Step.TOWNSHIP, "overdue"),
        Story(second, clerk2, "wait", "unpublished", Step.TOWNSHIP, "next"),
        Story(second, clerk2, "publicity", "civil", objection="open"),
        Story(second, clerk2, "publicity", "civil"),
        Story(second, clerk2, "to_publish", "civil"),
        Story(second, clerk2, "to_publish", "publicised"),
        Story(second, clerk2, "wait", "any", Step.VILLAGE, "fresh"),
        Story(second, clerk2, "wait", "any", Step.VILLAGE, "overdue"),
        Story(second, clerk2, "returned", "any"),
        Story(second, clerk2, "withdrawn", "any", Step.VILLAGE),
    ]
    stories = v1 + v2
    for n, story in enumerate(stories):
        story.minute = n
    return stories


APPROVE_OPINION = {
    Step.VILLAGE: "经村（居）民代表民主评议，符合申请条件",
    Step.TOWNSHIP: "材料齐全，审核通过",
    Step.COUNTY: "经信息比对核实，符合政策规定，同意",
    Step.CITY: "已纳入资金发放计划",
}
REJECT_OPINION = {
    Step.VILLAGE: "经入户核查，申请人家庭经济状况不符合本项目条件",
    Step.COUNTY: "经部门信息比对，申请人名下登记有商品房和机动车，不符合条件",
}
RETURN_OPINION = "缺少家庭收入情况说明，请补充后重新评议"
WITHDRAW_REASON = "申请人已外出务工，本人申请撤回"
OBJECTIONS = {
    "open": ("申请人子女在城区经商，家庭经济条件较好，不应享受", None),
    "dismissed": ("申请人家中今年新建了住房，怀疑收入较高",
                  "经入户核实，新建住房系危房改造补助所建，家庭收入未超标准，异议不成立"),
    "upheld": ("申请人已长期在外地居住，不在本地生活", "经核实申请人已在外地定居两年以上，异议成立，终止申请"),
}


# ---------------------------------------------------------------- a timeline of events


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    run: Callable[[], Any] = field(compare=False)


class Timeline:
    """Events run in the order of their time: the demo's clock only ever moves forward."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.keys: set[Any] = set()

    def add(self, at: datetime, run: Callable[[], Any], key: Any = None) -> None:
        if key is not None:
            if key in self.keys:
                return
            self.keys.add(key)
        self.events.append(Event(at, len(self.events), run))

    def run(self) -> None:
        for event in sorted(self.events):
            event.run()


# ---------------------------------------------------------------- the generator


@dataclass
class DemoApplications:
    total: int
    by_status: dict[str, int]
    demo_day: date
    ids: tuple[int, int] | None  # first and last id: the build writes them in one run, nothing between


class _Generator:
    def __init__(self, session: Session, plan: CityPlan, today: date, seed: int):
        self.session = session
        self.plan = plan
        self.today = today
        self.rng = random.Random(f"yikatong-demo-applications-{seed}")
        self.names = NamePicker(self.rng)
        self.calendar: WorkCalendar = load_calendar(session)
        # Days are counted in working days from the last working day up to the demo day, so a demo
        # day on a Saturday shifts the dates without changing the order of events (hence the ids).
        self.anchor = today if self.calendar.is_working(today) else self.calendar.subtract_working_days(today, 1)
        self.next_working = self.calendar.add_working_days(self.anchor, 1)
        self.timeline = Timeline()
        self.users = {u.username: u for u in session.scalars(select(User)).all()}
        self.items = {i.code: i for i in session.scalars(select(SubsidyItem)).all()}
        self.roads: dict[str, Road] = {}
        self.used: set[tuple[int, str]] = set()  # (person, item): one claim each
        self.applicants: Counter[int] = Counter()  # claims per person, to spread them over people
        self.app_ids: list[int] = []

    # .. days
    def back(self, n: int, day: date | None = None) -> date:
        """The n-th working day before `day` (default: the demo day, or the working day before it)."""
        return self.calendar.subtract_working_days(day or self.anchor, n)

    def ahead(self, n: int, day: date | None = None) -> date:
        return self.calendar.add_working_days(day or self.anchor, n)

    def road(self, item: SubsidyItem) -> Road:
        if item.code not in self.roads:
            self.roads[item.code] = roads.road_for(self.session, item)
        return self.roads[item.code]

    # .. people
    def candidates(self, village: str, limit: int | None = None, offset: int = 0) -> list[Candidate]:
        """Residents with an active card: subsidies are paid to the card only, so a claim of someone
        without one would be flagged by the interception rules (CARD_NOT_ACTIVE)."""
        q = (select(Person.id, Person.name, Person.birth_date, Person.gender, Person.relation, Person.is_beneficiary)
             .where(Person.region_code == village, Person.has_active_card).order_by(Person.id))
        if limit is not None:
            q = q.offset(offset).limit(limit)
        return [Candidate(r.id, r.name, age_at_reference(r.birth_date), r.gender == "男", r.relation == "户主",
                          bool(r.is_beneficiary)) for r in self.session.execute(q).all()]

    def choose(self, rules: list[ItemRule], people: list[Candidate], community: bool,
               exclude: frozenset[str] = frozenset(), shuffle: bool = True) -> tuple[ItemRule, Candidate] | None:
        """An item of `rules` (tried in a seeded order, or as given) and a person it fits,
        preferring people with fewer claims so far."""
        order = list(rules)
        if shuffle:
            self.rng.shuffle(order)
        for rule in order:
            if rule.code in exclude or rule.code not in self.items:
                continue
            fits = [c for c in people if (c.id, rule.code) not in self.used and rule.fits(c, community)]
            if not fits:
                continue
            fewest = min(self.applicants[c.id] for c in fits)
            fits = [c for c in fits if self.applicants[c.id] == fewest]
            person = fits[int(self.rng.random() * len(fits))]
            self.used.add((person.id, rule.code))
            self.applicants[person.id] += 1
            return rule, person
        return None

    # .. the demo area
    def demo_area(self) -> None:
        clerk, clerk2 = self.users.get("village_clerk"), self.users.get("village_clerk2")
        if clerk is None or clerk2 is None or "township_reviewer" not in self.users:
            return  # no demo users: nothing to tell stories about
        villages = {v.code: v for v in self.plan.villages}
        people = {code: self.candidates(code) for code in (clerk.region_code, clerk2.region_code)}
        stories = _stories(clerk.region_code, clerk2.region_code, clerk, clerk2)
        # The current publicity list of each village holds several applications of one item where
        # the village has the people for it.
        shared: dict[str, ItemRule | None] = {}
        for code in (clerk.region_code, clerk2.region_code):
            count = sum(1 for s in stories if s.village == code and s.goal == "publicity")
            community = villages[code].is_community if code in villages else False
            shared[code] = next((r for r in CIVIL if r.code not in TEST_ITEMS and r.code in self.items and sum(
                1 for c in people[code] if r.fits(c, community)) >= count), None)
        # the publicity stories choose first, so their shared item still has the people for it
        for story in sorted(stories, key=lambda s: s.goal != "publicity"):
            community = villages[story.village].is_community if story.village in villages else False
            rules = KINDS[story.kind]
            rule = shared[story.village] if story.goal == "publicity" else None
            picked = None
            if rule is not None:
                picked = self.choose([rule], people[story.village], community, TEST_ITEMS)
            picked = picked or self.choose(rules, people[story.village], community, TEST_ITEMS)
            if picked is None and story.fallback():
                picked = self.choose(KINDS[story.fallback()], people[story.village], community, TEST_ITEMS)
            if picked is None:
                continue  # a tiny city has too few people for every story
            rule, story.person = picked
            story.item = self.items[rule.code]
            story.road = self.road(story.item)
            self.plan_story(story)

    def plan_story(self, s: Story) -> None:
        road = s.road
        if s.goal == "wait":
            if s.stage not in road.steps:
                return self.plan_story_fallback(s)
            days = road.station(s.stage).days
            due = {"overdue": self.back(2), "next": self.next_working, "fresh": self.ahead(2)}[s.due]
            self.walk(s, s.stage, self.back(days, due))
        elif s.goal in ("approved", "payable"):
            last = road.steps[-1]
            self.walk(s, last, self.back(8))
            self.decide(s, last, self.at(self.back(6), 10), Action.APPROVE)
            if s.goal == "payable":  # city finance ran the pre-payment gate on it: 待支付
                self.timeline.add(self.at(self.back(5), 10, s.minute), lambda: self.gate(s, self.back(5)))
        elif s.goal == "rejected":
            self.walk(s, s.stage, self.back(6))
            self.decide(s, s.stage, self.at(self.back(4), 10), Action.REJECT)
        elif s.goal == "withdrawn":
            self.walk(s, s.stage, self.back(6))
            self.timeline.add(self.at(self.back(4), 10, s.minute),
                              lambda: service.withdraw(self.session, s.app, s.clerk, WITHDRAW_REASON,
                                                       self.at(self.back(4), 10, s.minute)))
        elif s.goal in ("returned", "corrected"):
            first_review = next(st for st in road.steps if st is not Step.VILLAGE and st is not Step.PUBLICITY)
            if s.goal == "returned":
                self.walk(s, first_review, self.back(6))
                self.decide(s, first_review, self.at(self.back(1), 15), Action.RETURN)
            else:
                self.walk(s, first_review, self.back(9))
                self.decide(s, first_review, self.at(self.back(7), 15), Action.RETURN)
                self.timeline.add(self.at(self.back(4), 11, s.minute), lambda: self.correct(s, self.back(4)))
        elif s.goal == "publicity":
            self.plan_publicity(s)
        elif s.goal == "to_publish":
            self.accept(s, self.at(self.back(3), 9, s.minute))
            self.decide(s, Step.VILLAGE, self.at(self.back(1), 16, s.minute), Action.APPROVE)

    def plan_story_fallback(self, s: Story) -> None:
        """The item's road skips the station the story wanted (e.g. an unpublicised item has no
        公示): wait at 村评 instead."""
        s.stage = Step.VILLAGE
        self.plan_story(s)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        # the demo's people work on Beijing's clock
        return beijing_at(day, time(hour)) + timedelta(minutes=minute)

    def walk(self, s: Story, target: Step, arrive: date) -> None:
        """Plan the road from the application to arriving at `target` on the working day `arrive`.

        Planned backwards: each earlier station was decided when the next one was entered, after a
        couple of working days there; a 公示 station was published its window's days before the
        nightly close that moved the application on."""
        steps = s.road.steps
        index = steps.index(target)
        if index and steps[index - 1] is Step.PUBLICITY:
            cur = beijing_at(arrive, WORKER_AT)
        else:
            cur = self.at(arrive, 10, s.minute)
        for step in reversed(steps[:index]):
            if step is Step.PUBLICITY:
                days = s.road.station(step).days
                publish_at = self.at(beijing_date(cur) - timedelta(days=days), 11, 2 * s.minute + 1)
                self.publish(s, publish_at)
                # evaluated just before publishing: nothing else of the village waits in between
                cur = publish_at - timedelta(minutes=1)
            else:
                self.decide(s, step, cur, Action.APPROVE)
                cur = self.at(self.back(2, beijing_date(cur)), 9, s.minute)
        self.accept(s, cur)

    def plan_publicity(self, s: Story) -> None:
        """On the village's current publicity list, which is open on the demo day."""
        published = self.current_publication()
        self.accept(s, self.at(self.back(3, beijing_date(published)), 9, s.minute))
        self.decide(s, Step.VILLAGE, published - timedelta(minutes=30 - s.minute % 30), Action.APPROVE)
        self.timeline.add(published, lambda: publicity.publish(self.session, s.clerk, published, village=s.village,
                                                               calendar=self.calendar),
                          key=("publish", s.village, published))
        if not s.objection:
            return
        # Objections come in the day the list goes up or the next; a checked one is answered the
        # next working day.
        first, second = self.back(2), self.back(1)
        raised = self.at(second if s.objection == "open" else first, 15, s.minute)
        reason, answer = OBJECTIONS[s.objection]
        anonymous = s.objection == "upheld"
        name = "" if anonymous else self.names.full_name(self.rng.random() < 0.5)
        contact = "" if anonymous else mobile_number(self.rng)
        holder: dict[str, int] = {}

        def object_() -> None:
            objection = publicity.raise_objection(self.session, s.app.publicity_id, s.app.id, reason, raised,
                                                  name=name, contact=contact)
            holder["id"] = objection.id

        self.timeline.add(raised, object_)
        if answer is None:
            return
        resolved = self.at(second, 10, s.minute)
        resolver = self.users["township_reviewer"] if s.objection == "dismissed" else s.clerk
        self.timeline.add(resolved, lambda: publicity.resolve_objection(
            self.session, holder["id"], resolver, s.objection == "upheld", answer, resolved, calendar=self.calendar))

    def current_publication(self) -> datetime:
        """When the current lists went up: two working days before the demo day (in working days,
        like every other date here, so the order of events and thus the ids do not depend on the
        weekday of the demo day). The 7-day window is then open on the demo day."""
        day = self.back(2)
        if day + timedelta(days=roads.DEFAULT_DAYS[Step.PUBLICITY] - 1) < self.today:  # a long holiday
            day = self.back(1)
        return self.at(day, 9)

    # .. events of one story
    def accept(self, s: Story, at: datetime) -> None:
        def run() -> None:
            text = (f"补贴申请书\n\n申请人：{s.person.name}\n申请项目：{s.item.name}\n"
                    "本人承诺所填信息真实、完整，如有虚假愿承担相应责任。\n")
            doc = store_document(self.session, text.encode(), "申请书.txt", TEXT, at, uploaded_by=s.clerk.id)
            s.app = service.accept(self.session, s.clerk, person_id=s.person.id, item_code=s.item.code,
                                   period=period_of(s.item.frequency, beijing_date(at)), note="本人申请",
                                   documents=[(doc.sha256, "申请书")], now=at, screen=False)
            self.app_ids.append(s.app.id)

        self.timeline.add(at, run)

    def decide(self, s: Story, step: Step, at: datetime, action: Action) -> None:
        role = roads.STEP_ROLE[step]
        reviewer = s.clerk if step is Step.VILLAGE else next(
            u for u in self.users.values() if u.role == role and u.username in (
                "township_reviewer", "county_handler", "city_finance"))
        opinion = {Action.APPROVE: APPROVE_OPINION.get(step, ""), Action.REJECT: REJECT_OPINION.get(step, ""),
                   Action.RETURN: RETURN_OPINION}[action]
        self.timeline.add(at, lambda: service.decide(self.session, s.app, reviewer, action, opinion, at,
                                                     calendar=self.calendar))

    def gate(self, s: Story, day: date) -> None:
        from yikatong.interception.service import gate

        gate(self.session, [s.app.id], self.at(day, 10, s.minute), self.users.get("city_finance"))

    def publish(self, s: Story, at: datetime) -> None:
        self.timeline.add(at, lambda: publicity.publish(self.session, s.clerk, at, village=s.village,
                                                        calendar=self.calendar), key=("publish", s.village, at))

    def correct(self, s: Story, day: date) -> None:
        at = self.at(day, 11, s.minute)
        text = f"家庭收入情况说明\n\n申请人：{s.person.name}\n家庭成员均无固定工资收入，主要收入为零星务工。\n"
        doc = store_document(self.session, text.encode(), "家庭收入情况说明.txt", TEXT, at, uploaded_by=s.clerk.id)
        service.correct(self.session, s.app, s.clerk, at, note="本人申请，已补充家庭收入情况说明",
                        documents=[(doc.sha256, "家庭收入情况说明")], opinion="已按要求补充材料")

    # .. the rest of the city
    def spread(self) -> None:
        demo_townships = {u.region_code[:9] for u in self.users.values() if u.username.startswith("village_clerk")}
        sectors = dict(self.session.execute(select(Department.code, Department.sector)).all())
        counter: dict[int, list] = {}  # working days ago -> claims entered at the village counter
        lists: dict[tuple[str, str], tuple[int, list]] = {}  # (county, sector) -> (days ago, claims)
        for village in self.plan.villages:
            if village.code[:9] in demo_townships:
                continue
            count = self._claims_in_village()
            if not count:
                continue
            people = self.candidates(village.code, PEOPLE_PER_VILLAGE, self._offset(village))
            rules = COMMUNITY_SPREAD if village.is_community else RURAL_SPREAD
            for _ in range(count):
                picked = self.choose(self._weighted(rules), people, village.is_community, shuffle=False)
                if picked is None:
                    continue
                rule, person = picked
                quantity = None
                if rule.mu:
                    quantity = f"{self.rng.randint(*rule.mu) / 100:.2f}"
                item = self.items[rule.code]
                if self.rng.random() < 0.5:
                    days = self.rng.randint(1, 8)  # a 村评 station lasts 5 working days: some overdue
                    counter.setdefault(days, []).append((person, item, quantity))
                else:
                    key = (village.code[:6], sectors.get(item.department_code, ""))
                    if key not in lists:
                        # 县定 lasts 10 working days: some lists overdue. The demo county handler's
                        # list came early enough for part of it to be decided already.
                        early = key == (DEMO_COUNTY, "民政")
                        lists[key] = (self.rng.randint(8, 14) if early else self.rng.randint(1, 14), [])
                    lists[key][1].append((person, item, quantity))
        for days, claims in sorted(counter.items()):
            self.enter(claims, Source.COUNTER, self.at(self.back(days), 9, 30))
        for (county, sector), (days, claims) in sorted(lists.items()):
            entered = self.enter(claims, Source.LIST, self.at(self.back(days), 14))
            if county == DEMO_COUNTY and sector == "民政" and days >= 5:
                self.decide_list(entered, days)

    def _claims_in_village(self) -> int:
        r = self.rng.random()
        for n, share in CLAIMS_PER_VILLAGE:
            r -= share
            if r < 0:
                return n
        return CLAIMS_PER_VILLAGE[-1][0]

    def _offset(self, village: Village) -> int:
        return int(self.rng.random() * max(0, village.population - PEOPLE_PER_VILLAGE))

    def _weighted(self, rules: list[ItemRule]) -> list[ItemRule]:
        """The rules in a weighted random order: choose() takes the first that fits someone."""
        pool = [r for r in rules for _ in range(r.weight)]
        self.rng.shuffle(pool)
        return list(dict.fromkeys(pool))

    def enter(self, claims: list, source: Source, at: datetime) -> dict[str, list[int]]:
        """Claims entered in bulk at `at`: the ids, in claim order, go in the returned holder."""
        holder: dict[str, list[int]] = {"ids": []}

        def run() -> None:
            prepared = service.prepare_claims(self.session, None, [
                service.Claim(ref=n, person_id=person.id, item_code=item.code,
                              period=period_of(item.frequency, beijing_date(at)), quantity=quantity)
                for n, (person, item, quantity) in enumerate(claims, start=1)], source, at, calendar=self.calendar)
            if prepared.errors:  # the generator's own mistake, never the data's
                raise RuntimeError(f"demo claims refused: {prepared.errors[:3]}")
            holder["ids"] = service.enter_claims(self.session, None, prepared, source, at, source_ref=SOURCE_REF,
                                                 screen=False)
            self.app_ids.extend(holder["ids"])

        self.timeline.add(at, run)
        return holder

    def decide_list(self, entered: dict[str, list[int]], days: int) -> None:
        """The demo county handler works through part of a 资中县 civil-affairs list: a third goes
        on to 市管 (half of those approved there too), one claim is rejected."""
        handler, city = self.users.get("county_handler"), self.users.get("city_finance")
        if handler is None or city is None:
            return
        county_at = self.at(self.back(days - 2), 15)
        city_at = self.at(self.back(days - 4), 10)

        def county() -> None:
            ids = entered["ids"]
            for n, app_id in enumerate(ids):
                app = self.session.get(Application, app_id)
                if n % 3 == 0:
                    service.decide(self.session, app, handler, Action.APPROVE, APPROVE_OPINION[Step.COUNTY],
                                   county_at, calendar=self.calendar)
                elif n == len(ids) - 1 and n > 2:
                    service.decide(self.session, app, handler, Action.REJECT, REJECT_OPINION[Step.COUNTY],
                                   county_at, calendar=self.calendar)

        def city_step() -> None:
            for n, app_id in enumerate(entered["ids"]):
                if n % 6 == 0:
                    service.decide(self.session, self.session.get(Application, app_id), city, Action.APPROVE,
                                   APPROVE_OPINION[Step.CITY], city_at, calendar=self.calendar)

        self.timeline.add(county_at, county)
        self.timeline.add(city_at, city_step)

    # .. run
    def run(self) -> DemoApplications:
        self.demo_area()
        self.spread()
        if self.timeline.events:
            # the worker closes ended publicity windows every night, up to the demo day
            first = beijing_date(min(e.at for e in self.timeline.events))
            day = first
            while day <= self.today:
                moment = beijing_at(day, WORKER_AT)
                self.timeline.add(moment, lambda moment=moment: publicity.close_ended(self.session, moment,
                                                                                     self.calendar))
                day += timedelta(days=1)
        self.timeline.run()
        self.session.flush()
        by_status: Counter[str] = Counter()
        for start in range(0, len(self.app_ids), service.CHUNK):
            chunk = self.app_ids[start:start + service.CHUNK]
            by_status.update(self.session.scalars(select(Application.status).where(Application.id.in_(chunk))))
        ids = (min(self.app_ids), max(self.app_ids)) if self.app_ids else None
        return DemoApplications(sum(by_status.values()), dict(by_status), self.today, ids)


def create_demo_applications(session: Session, plan: CityPlan, today: date, seed: int) -> DemoApplications:
    """Write the demo applications (after the demo users exist); see the module docstring."""
    return _Generator(session, plan, today, seed).run()
