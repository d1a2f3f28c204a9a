"""Demo accounts, one per role, all with the password DEMO_PASSWORD."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from yikatong.core.protect import protect
from yikatong.security.roles import ROLE_LABELS, Role
from yikatong.security.service import create_user, hash_password
from yikatong.synth.catalog_data import BANKS, department_code
from yikatong.synth.regions import CITY_CODE, CityPlan

DEMO_PASSWORD = "ykt-demo-2026"


@dataclass
class DemoLogin:
    username: str
    password: str
    role: str
    role_label: str
    region_code: str
    region_name: str


def create_demo_users(session: Session, plan: CityPlan, region_names: dict[str, str], now: datetime) -> list[DemoLogin]:
    county = "511025000000"  # 资中县
    township = min((t for t in plan.townships if t.code.startswith(county[:6])), key=lambda t: t.code)
    first, second = sorted(township.villages, key=lambda v: v.code)[:2]
    bank = BANKS[0]
    specs = [
        ("city_finance", Role.CITY_FINANCE, CITY_CODE, "市财政局 王建国", {}),
        # the checker of city finance's payment batches (maker/checker: never the same person)
        ("city_finance2", Role.CITY_FINANCE, CITY_CODE, "市财政局 复核员 吴芳", {}),
        ("supervisor", Role.SUPERVISOR, CITY_CODE, "市纪委监委 李秀英", {}),
        # 资中县财政局 pays the county-funded items of its county: a maker and a checker
        ("county_finance", Role.COUNTY_FINANCE, county, "资中县财政局 郑凯", {}),
        ("county_finance2", Role.COUNTY_FINANCE, county, "资中县财政局 复核员 何静", {}),
        ("county_handler", Role.COUNTY_HANDLER, county, "资中县民政局 张伟",
         {"department_code": department_code(county, "民政")}),
        # 分管领导: overdue work of the county civil-affairs office is escalated to her
        ("county_leader", Role.COUNTY_HANDLER, county, "资中县民政局 分管领导 黄丽华",
         {"department_code": department_code(county, "民政")}),
        ("township_reviewer", Role.TOWNSHIP_REVIEWER, township.code, f"{township.name} 刘芳", {}),
        ("village_clerk", Role.VILLAGE_CLERK, first.code, f"{first.name} 陈明", {}),
        ("village_clerk2", Role.VILLAGE_CLERK, second.code, f"{second.name} 杨丽", {}),
        ("bank", Role.BANK, CITY_CODE, f"{bank.name} 代发专员", {"bank_code": bank.code}),
        ("sysadmin", Role.SYSTEM_ADMIN, CITY_CODE, "系统管理员 赵强", {}),
        ("secadmin", Role.SECURITY_ADMIN, CITY_CODE, "安全管理员 孙静", {}),
        ("auditadmin", Role.AUDIT_ADMIN, CITY_CODE, "审计管理员 周敏", {}),
    ]
    password_hash = hash_password(DEMO_PASSWORD)  # argon2 is slow on purpose: hash once, reuse
    logins = []
    for index, (username, role, region, display, extra) in enumerate(specs, start=1):
        user = create_user(session, username, DEMO_PASSWORD, role, region, display, now,
                           password_hash=password_hash, **extra)
        # Where the electronic eye reaches them: a (fictitious) WeChat openid and work mobile.
        user.leader = username == "county_leader"
        user.wechat_openid = "oYKT" + hashlib.sha256(username.encode()).hexdigest()[:24]
        phone = protect("phone", f"1990000{index:04d}")
        user.phone_enc, user.phone_masked = phone.enc, phone.masked
        logins.append(DemoLogin(username, DEMO_PASSWORD, role.value, ROLE_LABELS[role], region,
                                region_names.get(region, region)))
    return logins
