"""The tables a rule may read (规则可用的数据表), with their columns, DuckDB types and meaning.

Rules see a columnar snapshot: the live applications and the registry and catalogue rows they need,
exported from the transactional database, and the current snapshot of every shared data set. This
one list is what the snapshot builder exports, what the rule validator allows, and what
docs/rules.md documents.
"""

from __future__ import annotations

from dataclasses import dataclass

from yikatong.sharing.datasets import DATASETS, Kind


@dataclass(frozen=True)
class RuleColumn:
    name: str
    type: str  # DuckDB type
    description: str  # Chinese


@dataclass(frozen=True)
class RuleTable:
    name: str
    label: str  # Chinese
    columns: tuple[RuleColumn, ...]
    shared: bool  # a shared data set (else exported from the platform's own tables)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def schema(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


def _c(name: str, type_: str, description: str) -> RuleColumn:
    return RuleColumn(name, type_, description)


PLATFORM_TABLES: tuple[RuleTable, ...] = (
    RuleTable("applications", "补贴申请（办理中、已通过和待支付的）", (
        _c("application_id", "BIGINT", "申请ID"),
        _c("number", "VARCHAR", "申请编号"),
        _c("item_code", "VARCHAR", "补贴项目代码"),
        _c("person_id", "BIGINT", "申请人（享受人）ID"),
        _c("household_id", "BIGINT", "户ID，可为空"),
        _c("region_code", "VARCHAR", "申请所在村（社区）区划代码"),
        _c("period", "VARCHAR", "所属期，如2026-11、2026Q4、2026H2、2026"),
        _c("period_start", "DATE", "所属期第一天"),
        _c("period_end", "DATE", "所属期最后一天"),
        _c("basis", "VARCHAR", "计发依据：人、户、亩"),
        _c("quantity_centi", "BIGINT", "数量×100（人、户为100）"),
        _c("standard_fen", "BIGINT", "计算时的补贴标准（分）"),
        _c("period_standard_fen", "BIGINT",
           "所属期适用的补贴标准（分）：所属期第一天有效的标准，本县有自定标准的取本县标准"),
        _c("amount_fen", "BIGINT", "申请金额（分）"),
        _c("status", "VARCHAR", "办理中、已通过或待支付"),
        _c("stage", "VARCHAR", "所处环节（办理中时）"),
        _c("created_at", "TIMESTAMP", "提交时间"),
    ), False),
    RuleTable("persons", "人员信息", (
        _c("person_id", "BIGINT", "人员ID"),
        _c("id_hash", "VARCHAR", "身份证号码的检索哈希（与共享数据的id_hash可直接关联）"),
        _c("id_masked", "VARCHAR", "脱敏身份证号码"),
        _c("name", "VARCHAR", "姓名"),
        _c("gender", "VARCHAR", "性别：男、女"),
        _c("birth_date", "DATE", "出生日期"),
        _c("region_code", "VARCHAR", "所在村（社区）区划代码"),
        _c("household_id", "BIGINT", "户ID，可为空"),
    ), False),
    RuleTable("households", "户", (
        _c("household_id", "BIGINT", "户ID"),
        _c("code", "VARCHAR", "户编号"),
        _c("region_code", "VARCHAR", "所在村（社区）区划代码"),
    ), False),
    RuleTable("cards", "社会保障卡（平台登记的）", (
        _c("card_number", "VARCHAR", "社会保障卡号"),
        _c("person_id", "BIGINT", "持卡人ID"),
        _c("bank_code", "VARCHAR", "代发银行代码"),
        _c("account_hash", "VARCHAR", "金融账户的检索哈希"),
        _c("account_masked", "VARCHAR", "脱敏金融账号"),
        _c("status", "VARCHAR", "卡状态：正常、挂失、冻结、注销"),
        _c("issued_on", "DATE", "发卡日期"),
    ), False),
    RuleTable("proxy_holdings", "代管代持登记", (
        _c("person_id", "BIGINT", "被代管人ID"),
        _c("holder_id_hash", "VARCHAR", "代管人身份证号码的检索哈希"),
        _c("holder_relation", "VARCHAR", "与被代管人关系"),
        _c("valid_from", "DATE", "有效期起"),
        _c("valid_until", "DATE", "有效期止，可为空（长期）"),
    ), False),
    RuleTable("items", "补贴项目", (
        _c("item_code", "VARCHAR", "补贴项目代码"),
        _c("name", "VARCHAR", "项目名称"),
        _c("basis", "VARCHAR", "计发依据：人、户、亩"),
        _c("standard_fen", "BIGINT", "现行补贴标准（分）"),
        _c("frequency", "VARCHAR", "发放周期：月、季、半年、年、一次性"),
        _c("means_tested", "BOOLEAN", "是否需家庭经济状况核查（困难救助类）"),
        _c("min_age", "INTEGER", "最低年龄（周岁），可为空"),
        _c("max_age", "INTEGER", "最高年龄（周岁），可为空"),
    ), False),
    RuleTable("item_standards", "补贴标准（按生效日期）", (
        _c("standard_id", "BIGINT", "标准记录ID（同一天生效的多条以ID大者为准）"),
        _c("item_code", "VARCHAR", "补贴项目代码"),
        _c("county_code", "VARCHAR", "县级区划代码前6位，可为空（全市统一标准）"),
        _c("valid_from", "DATE", "生效日期：所属期第一天在此日期及以后的申请适用"),
        _c("standard_fen", "BIGINT", "补贴标准（分）"),
    ), False),
    RuleTable("item_exclusions", "互斥项目", (
        _c("item_code", "VARCHAR", "补贴项目代码"),
        _c("other_code", "VARCHAR", "与之互斥的补贴项目代码"),
    ), False),
)

def _shared_table(dataset) -> RuleTable:
    columns: list[RuleColumn] = []
    for f in dataset.fields:  # the stored columns and types of sharing.datasets
        if f.kind is Kind.ID_NUMBER:
            columns.append(_c(f"{f.key}_hash", "VARCHAR", f"{f.header}的检索哈希"))
            columns.append(_c(f"{f.key}_masked", "VARCHAR", f"脱敏{f.header}"))
        else:
            unit = "（分）" if f.kind is Kind.YUAN else "（×100）" if f.kind is Kind.DECIMAL2 else ""
            columns.append(_c(f.key, f.stored_types[0], f.header.split("（")[0] + unit))
    columns.append(_c("snapshot_id", "BIGINT", "所属数据快照ID"))
    return RuleTable(dataset.code, dataset.label, tuple(columns), True)


SHARED_TABLES: tuple[RuleTable, ...] = tuple(_shared_table(d) for d in DATASETS)
RULE_TABLES: dict[str, RuleTable] = {t.name: t for t in PLATFORM_TABLES + SHARED_TABLES}

# Every rule returns these columns; amount_fen (money at stake) is optional and defaults to the
# application's amount; fact_key (what the fact is, not how it is worded) defaults to the rule's code.
REQUIRED_COLUMNS = ("application_id", "evidence")
OPTIONAL_COLUMNS = ("amount_fen", "fact_key")


def validator_schema() -> dict[str, dict[str, str]]:
    """{table: {column: type}} for sqlglot's qualifier."""
    return {name: table.schema() for name, table in RULE_TABLES.items()}
