"""Roles from MISSION.md and what each may do. Separation of powers (三员分立): the three
administrators run the system and read the audit trail but never read personal data."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from yikatong.core.errors import Forbidden

if TYPE_CHECKING:
    from yikatong.security.models import User


class Role(StrEnum):
    VILLAGE_CLERK = "village_clerk"
    TOWNSHIP_REVIEWER = "township_reviewer"
    COUNTY_HANDLER = "county_handler"
    CITY_FINANCE = "city_finance"
    COUNTY_FINANCE = "county_finance"
    BANK = "bank"
    SUPERVISOR = "supervisor"
    SYSTEM_ADMIN = "system_admin"
    SECURITY_ADMIN = "security_admin"
    AUDIT_ADMIN = "audit_admin"


ROLE_LABELS: dict[Role, str] = {
    Role.VILLAGE_CLERK: "村级经办员",
    Role.TOWNSHIP_REVIEWER: "乡镇审核员",
    Role.COUNTY_HANDLER: "县级部门经办员",
    Role.CITY_FINANCE: "市财政管理员",
    Role.COUNTY_FINANCE: "县财政发放员",
    Role.BANK: "代发银行",
    Role.SUPERVISOR: "监督人员",
    Role.SYSTEM_ADMIN: "系统管理员",
    Role.SECURITY_ADMIN: "安全管理员",
    Role.AUDIT_ADMIN: "审计管理员",
}


class Perm(StrEnum):
    PERSON_READ = "person.read"  # masked personal data within scope
    PERSON_READ_CLEAR = "person.read_clear"  # the clear ID number / phone / account, audited
    REGISTRY_IMPORT = "registry.import"
    CATALOG_READ = "catalog.read"
    CATALOG_MANAGE = "catalog.manage"
    USER_MANAGE = "user.manage"
    AUDIT_READ = "audit.read"
    APPLICATION_READ = "application.read"  # applications and their trail, within scope and duties
    APPLICATION_ACCEPT = "application.accept"  # 受理: enter a household's application at the village
    APPLICATION_LIST = "application.list"  # submit a department list (Excel/CSV) or over the API
    REVIEW = "application.review"  # decide at the stations of one's role
    PUBLICITY_MANAGE = "publicity.manage"  # publish village publicity lists, record objections
    OVERDUE_READ = "overdue.read"  # the overdue board of the electronic eye
    SHARED_READ = "shared.read"  # the shared data sets: deliveries, counts, provenance (信息归集)
    SHARED_IMPORT = "shared.import"  # load a delivery of a shared data set
    FLAG_READ = "flag.read"  # suspicious-record flags (存疑信息) and interception statistics, within scope
    FLAG_VERIFY = "flag.verify"  # 核实: confirm or clear a flag on an application of one's duties
    RULE_RUN = "rule.run"  # start a city-wide run of the rules
    RULE_MANAGE = "rule.manage"  # write, dry-run and switch on rules in SQL
    PAYMENT_GATE = "payment.gate"  # the pre-payment gate: checked applications move to 待支付
    PAYMENT_READ = "payment.read"  # budgets (指标), payment batches and orders (accounts masked), within scope
    BUDGET_MANAGE = "budget.manage"  # enter or import budget allocations
    PAYMENT_MANAGE = "payment.manage"  # build payment batches and approve another user's (maker/checker)
    PAYMENT_REWORK = "payment.rework"  # take back a failed payment with the bank's reason, release it to be paid again
    BANK_EXCHANGE = "bank.exchange"  # a bank: download its own batches' files, upload their returns and statements


_BUSINESS_READ = {Perm.PERSON_READ, Perm.CATALOG_READ, Perm.APPLICATION_READ, Perm.OVERDUE_READ}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    # The clerk records applications and must check the card and ID against the household's papers.
    Role.VILLAGE_CLERK: frozenset(_BUSINESS_READ | {Perm.PERSON_READ_CLEAR, Perm.REGISTRY_IMPORT,
                                                    Perm.APPLICATION_ACCEPT, Perm.REVIEW, Perm.PUBLICITY_MANAGE}),
    Role.TOWNSHIP_REVIEWER: frozenset(_BUSINESS_READ | {Perm.REVIEW}),
    # The county department verifies the flags on its own items (核实).
    Role.COUNTY_HANDLER: frozenset(_BUSINESS_READ | {Perm.PERSON_READ_CLEAR, Perm.REGISTRY_IMPORT,
                                                     Perm.APPLICATION_LIST, Perm.REVIEW, Perm.FLAG_READ,
                                                     Perm.FLAG_VERIFY, Perm.PAYMENT_REWORK}),
    # City finance gathers the shared data (信息归集牵头) and runs the checks before money moves.
    Role.CITY_FINANCE: frozenset(_BUSINESS_READ | {Perm.REGISTRY_IMPORT, Perm.CATALOG_MANAGE,
                                                   Perm.APPLICATION_LIST, Perm.REVIEW, Perm.SHARED_READ,
                                                   Perm.SHARED_IMPORT, Perm.FLAG_READ, Perm.RULE_RUN,
                                                   Perm.PAYMENT_GATE, Perm.PAYMENT_READ, Perm.BUDGET_MANAGE,
                                                   Perm.PAYMENT_MANAGE, Perm.PAYMENT_REWORK}),
    # A county's finance bureau pays the county-funded (县级) items of its county: batches, the bank's
    # files, reconciliation, failures; the catalogue, budgets, shared data and rules stay with the city.
    Role.COUNTY_FINANCE: frozenset(_BUSINESS_READ | {Perm.PAYMENT_GATE, Perm.PAYMENT_READ, Perm.PAYMENT_MANAGE,
                                                     Perm.PAYMENT_REWORK}),
    Role.BANK: frozenset({Perm.CATALOG_READ, Perm.BANK_EXCHANGE}),
    # Supervisors follow leads and must be able to see who exactly was paid.
    # Supervisors write the rules and read every flag and lead; they do not verify (that is the
    # department's duty) so that the checker is not the one who clears.
    Role.SUPERVISOR: frozenset(_BUSINESS_READ | {Perm.PERSON_READ_CLEAR, Perm.SHARED_READ, Perm.FLAG_READ,
                                                 Perm.RULE_RUN, Perm.RULE_MANAGE, Perm.PAYMENT_READ}),
    Role.SYSTEM_ADMIN: frozenset({Perm.USER_MANAGE, Perm.CATALOG_READ}),
    Role.SECURITY_ADMIN: frozenset({Perm.USER_MANAGE}),
    Role.AUDIT_ADMIN: frozenset({Perm.AUDIT_READ}),
}


def has_perm(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMS.get(Role(role), frozenset())


def require_perm(user: User, perm: Perm) -> None:
    """Refuse (403) a user whose role lacks the permission."""
    if not has_perm(user.role, perm):
        raise Forbidden("当前角色无此权限")
