"""What each kind of import file looks like: its columns, how each cell is read, and who may load it.

A column has a canonical Chinese header (what the templates write) and English aliases; either is
accepted. A parser turns one cell's text into a value or raises ValueError with a Chinese reason.
docs/data-formats.md is checked against these specs by the tests (`markdown_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from yikatong.catalog.models import Basis, Frequency, FundingLevel
from yikatong.core import masking
from yikatong.core.idnumber import IdFacts, normalize, parse_id_number
from yikatong.core.phone import parse_mobile
from yikatong.core.readers import Num, day, region_code, yuan  # one parser per kind of cell
from yikatong.registry.models import CardStatus
from yikatong.security.roles import Perm

Parser = Callable[[str], Any]

# How a column treats a cell that Excel stored as a number.
NUM_REFUSE = "refuse"  # always an error (ID numbers: 18 digits do not survive a double)
NUM_EXACT = "exact"  # accepted when it is a whole number of at most 15 digits (exact in Excel)
NUM_ANY = "any"  # accepted as written (amounts, names)


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # canonical Chinese header
    aliases: tuple[str, ...]  # English alias first, then other accepted spellings
    required: bool
    parse: Parser
    fmt: str  # format, in English (docs/data-formats.md)
    fmt_zh: str  # format, in Chinese (upload page, templates)
    example: str
    numeric: str = NUM_EXACT
    mask: Callable[[str], str] | None = None  # personal data: how a value is shown in error reports

    @property
    def alias(self) -> str:
        return self.aliases[0]

    def read(self, cell: str) -> Any:
        if isinstance(cell, Num):
            if self.numeric == NUM_REFUSE:
                raise ValueError(f"{self.header}被Excel存为数字，请将该列设置为文本格式后重新填写")
            if self.numeric == NUM_EXACT and (not cell.isdigit() or len(cell) > 15):
                raise ValueError(f"{self.header}被Excel存为数字，可能已丢失位数，请将该列设置为文本格式后重新填写")
        return self.parse(str(cell))

    def shown(self, cell: str | None) -> str:
        """The cell as shown in an error report: personal data masked, long text cut."""
        if cell is None:
            return ""
        text = str(cell)
        if self.mask is not None:
            text = self.mask(text)
        return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Kind:
    name: str  # URL and CLI name: "persons"
    label: str  # 人员
    perm: Perm
    key: str  # the column whose value is the natural key
    columns: tuple[Column, ...]
    scoped: bool  # rows carry a region that must lie inside the importing user's subtree
    summary: str  # one line, English (CLI help)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


# ---------------------------------------------------------------- parsers


def text(max_len: int, multiline: bool = False) -> Parser:
    def parse(value: str) -> str:
        value = value.strip()
        if multiline:
            value = value.replace("\r\n", "\n")
        if any(ord(ch) < 32 and not (multiline and ch in "\n\t") for ch in value):
            raise ValueError("含有换行或控制字符")
        if len(value) > max_len:
            raise ValueError(f"长度不能超过{max_len}个字符，实际{len(value)}个")
        return value

    return parse


_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_\-]*$")


def code(max_len: int) -> Parser:
    def parse(value: str) -> str:
        value = value.strip()
        if len(value) > max_len:
            raise ValueError(f"代码长度不能超过{max_len}个字符，实际{len(value)}个")
        if not _CODE.match(value):
            raise ValueError("代码只能由字母、数字、下划线和短横线组成")
        return value

    return parse


def id_number(value: str) -> IdFacts:
    return parse_id_number(value)


def optional_region_code(value: str) -> str:
    return region_code(value)


_NAME_MARKS = set("·•．. -")


def person_name(value: str) -> str:
    value = value.strip()
    if len(value) > 40:
        raise ValueError(f"姓名不能超过40个字符，实际{len(value)}个")
    if not all(ch.isalpha() or ch in _NAME_MARKS for ch in value) or not any(ch.isalpha() for ch in value):
        raise ValueError("姓名只能含汉字、字母和间隔号“·”")
    return value


phone = parse_mobile


def bank_account(value: str) -> str:
    digits = re.sub(r"[\s\-]", "", value)
    if not digits.isdigit() or not 12 <= len(digits) <= 30:
        raise ValueError("银行账号应为12至30位数字")
    return digits


def card_number(value: str) -> str:
    number = value.strip().upper()
    if not re.fullmatch(r"[0-9A-Z]{6,20}", number):
        raise ValueError("社会保障卡号应为6至20位字母或数字")
    return number


_TRUE = {"是", "true", "1", "y", "yes", "t", "√"}
_FALSE = {"否", "false", "0", "n", "no", "f", "×"}


def boolean(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError("应填“是”或“否”")


def choice(enum: type[StrEnum]) -> Parser:
    allowed = [m.value for m in enum]

    def parse(value: str) -> str:
        v = value.strip()
        if v not in allowed:
            raise ValueError("应为以下之一：" + "、".join(allowed))
        return v

    return parse


def mask_id(value: str) -> str:
    return masking.mask_id_number(normalize(value))


def mask_digits(mask: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: mask(re.sub(r"[\s\-]", "", value))


# ---------------------------------------------------------------- columns shared by several kinds


def _id_column(required: bool = True) -> Column:
    return Column("id_number", "身份证号", ("id_number", "身份证号码", "公民身份号码"), required, id_number,
                  "18-character resident ID number (GB 11643), valid check character; last character may be X. "
                  "Text, never a number cell", "18位居民身份证号，校验位正确，末位可为X；Excel中须为文本格式",
                  "511011199001010034", numeric=NUM_REFUSE, mask=mask_id)


def _village_column() -> Column:
    return Column("region_code", "区划代码", ("region_code", "行政区划代码"), True, region_code,
                  "12-digit statistical region code of a village (村/社区) that exists",
                  "已有村（社区）的12位统计用区划代码", "511002001001")


ENUM_VALUES = {
    "status": CardStatus, "funding_level": FundingLevel, "basis": Basis, "frequency": Frequency,
}

KINDS: dict[str, Kind] = {}


def _kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


_kind(Kind(
    name="regions", label="行政区划", perm=Perm.CATALOG_MANAGE, key="code", scoped=True,
    summary="Administrative areas (province, city, county, township, village) by statistical code.",
    columns=(
        Column("code", "区划代码", ("region_code", "code"), True, region_code,
               "12-digit statistical code (GB/T 2260 6-digit county codes and 2/4/9-digit prefixes are "
               "padded with zeros to 12)", "12位统计用区划代码（6位行政区划代码等前缀会补0到12位）",
               "511002001001"),
        Column("name", "名称", ("name",), True, text(60), "Short name, at most 60 characters",
               "简称，不超过60字", "白马镇某村"),
        Column("full_name", "全称", ("full_name",), False, text(200),
               "Full name, at most 200 characters. Empty: the parent's full name followed by 名称",
               "全称，不超过200字；为空时取上级全称加名称", "四川省内江市市中区白马镇某村"),
        Column("parent_code", "上级代码", ("parent_code",), False, optional_region_code,
               "Code of the parent region. Empty: derived from the code (see below)",
               "上级区划代码；为空时按代码前缀自动确定", "511002001000"),
    ),
))

_kind(Kind(
    name="departments", label="经办部门", perm=Perm.CATALOG_MANAGE, key="code", scoped=True,
    summary="Handling departments (经办部门) of the city, counties and townships.",
    columns=(
        Column("code", "部门代码", ("department_code", "code"), True, code(20),
               "Letters, digits, '_' or '-', at most 20", "字母、数字、下划线或短横线，不超过20位", "D511002-MZ"),
        Column("name", "部门名称", ("department_name", "name"), True, text(80), "At most 80 characters",
               "不超过80字", "市中区民政局"),
        Column("region_code", "区划代码", ("region_code",), True, region_code,
               "12-digit code of the region the department belongs to (any level; must exist)",
               "所属区划的12位代码（任意级别，须已存在）", "511002000000"),
        Column("sector", "行业", ("sector",), True, text(20),
               "Sector, the same word at every level (民政, 农业农村, 残联 ...), at most 20 characters",
               "行业（民政、农业农村、残联等），不超过20字", "民政"),
    ),
))

_kind(Kind(
    name="banks", label="代发银行", perm=Perm.CATALOG_MANAGE, key="code", scoped=False,
    summary="Paying banks (代发银行) chosen by the city.",
    columns=(
        Column("code", "银行代码", ("bank_code", "code"), True, code(10),
               "Letters, digits, '_' or '-', at most 10", "字母、数字、下划线或短横线，不超过10位", "ICBC"),
        Column("name", "银行名称", ("bank_name", "name"), True, text(80), "At most 80 characters",
               "不超过80字", "中国工商银行内江分行"),
        Column("account_prefix", "账号前缀", ("account_prefix",), False, lambda v: _digits(v, 8, "账号前缀"),
               "Leading digits (BIN) of its social security card accounts, at most 8 digits; empty allowed",
               "该行社保卡金融账户的前几位（卡BIN），不超过8位数字，可空", "621226"),
    ),
))

_kind(Kind(
    name="households", label="户", perm=Perm.REGISTRY_IMPORT, key="code", scoped=True,
    summary="Registered households (户), each in a village.",
    columns=(
        Column("code", "户编号", ("household_code", "code"), True, code(30),
               "Household number, letters, digits, '_' or '-', at most 30; unique in the city",
               "户编号，字母、数字、下划线或短横线，不超过30位，全市唯一", "511002001001-0001"),
        _village_column(),
        Column("address", "地址", ("address",), False, text(200), "At most 200 characters",
               "不超过200字", "白马镇某村3组12号"),
    ),
))

_kind(Kind(
    name="persons", label="人员", perm=Perm.REGISTRY_IMPORT, key="id_number", scoped=True,
    summary="Residents, keyed by ID number; gender and birth date come from the ID number.",
    columns=(
        _id_column(),
        Column("name", "姓名", ("name",), True, person_name,
               "Chinese characters or letters, '·' allowed, at most 40", "汉字或字母，可含间隔号“·”，不超过40字",
               "张三", numeric=NUM_ANY, mask=masking.mask_name),
        _village_column(),
        Column("household_code", "户编号", ("household_code",), False, code(30),
               "Number of an existing household in the same village; empty: no household",
               "已有的本村户编号；可空", "511002001001-0001"),
        Column("relation", "与户主关系", ("relation",), False, text(10),
               "Relation to the head of household (户主, 配偶, 子, 女 ...), at most 10 characters",
               "户主、配偶、子、女等，不超过10字", "户主"),
        Column("phone", "手机号", ("phone", "手机号码", "联系电话"), False, phone,
               "11-digit mainland mobile number starting with 1 (spaces, '-' and +86 are removed)",
               "11位大陆手机号码，以1开头", "13812345678", mask=mask_digits(masking.mask_phone)),
        Column("is_beneficiary", "是否享受补贴", ("is_beneficiary",), False, boolean,
               "是 or 否 (also true/false, 1/0, yes/no); empty: 否", "填“是”或“否”，为空视为否", "是"),
        Column("no_card_reason", "未持卡原因", ("no_card_reason",), False, text(60),
               "Why the person has no active social security card, at most 60 characters",
               "未持有正常状态社保卡的原因，不超过60字", "外出务工未领卡"),
    ),
))

_kind(Kind(
    name="cards", label="社保卡", perm=Perm.REGISTRY_IMPORT, key="card_number", scoped=True,
    summary="Social security cards (社会保障卡) and their bank accounts, keyed by card number.",
    columns=(
        Column("card_number", "社会保障卡号", ("card_number", "社保卡号"), True, card_number,
               "6 to 20 letters or digits (upper-cased)", "6至20位字母或数字", "A12345678"),
        _id_column(),
        Column("name", "姓名", ("name",), False, person_name,
               "Optional cross-check: must equal the name of the person with this ID number",
               "可选，用于核对：须与该身份证号人员的姓名一致", "张三", numeric=NUM_ANY, mask=masking.mask_name),
        Column("bank_code", "银行代码", ("bank_code",), True, code(10), "Code of an existing paying bank",
               "已有代发银行的代码", "ICBC"),
        Column("bank_account", "银行账号", ("bank_account", "银行卡号", "金融账号"), True, bank_account,
               "12 to 30 digits (spaces and '-' are removed); text cell when longer than 15 digits",
               "12至30位数字；超过15位时Excel中须为文本格式", "6217001234567890123",
               mask=mask_digits(masking.mask_account)),
        Column("status", "卡状态", ("status",), False, choice(CardStatus),
               "One of 正常, 挂失, 冻结, 注销; empty: 正常", "正常、挂失、冻结、注销之一，为空视为正常", "正常"),
        Column("issued_on", "发卡日期", ("issued_on",), True, day,
               "Date YYYY-MM-DD (also YYYY/MM/DD, YYYY.MM.DD, YYYYMMDD, YYYY年M月D日 or an Excel date cell), "
               "not after today",
               "日期，格式 YYYY-MM-DD（也可为Excel日期），不晚于今天", "2021-06-30"),
        Column("status_changed_on", "状态变更日期", ("status_changed_on",), False, day,
               "Date of the last status change, same formats, not before 发卡日期", "最近一次状态变更日期，可空",
               "2024-01-15"),
    ),
))

_kind(Kind(
    name="catalogue", label="补贴项目目录", perm=Perm.CATALOG_MANAGE, key="item_code", scoped=False,
    summary="The subsidy catalogue: one row per item, with its category code and name.",
    columns=(
        Column("item_code", "项目代码", ("item_code",), True, code(20),
               "Letters, digits, '_' or '-', at most 20", "字母、数字、下划线或短横线，不超过20位", "MZ-DB-01"),
        Column("item_name", "项目名称", ("item_name",), True, text(100), "At most 100 characters",
               "不超过100字", "城乡最低生活保障金"),
        Column("category_code", "类别代码", ("category_code",), True, code(20),
               "Letters, digits, '_' or '-', at most 20", "字母、数字、下划线或短横线，不超过20位", "MZ-DB"),
        Column("category_name", "类别名称", ("category_name",), True, text(80), "At most 80 characters",
               "不超过80字", "最低生活保障"),
        Column("funding_level", "资金级次", ("funding_level",), True, choice(FundingLevel),
               "One of 中央, 省, 市, 县", "中央、省、市、县之一", "中央"),
        Column("department_code", "主管部门代码", ("department_code",), True, code(20),
               "Code of an existing department", "已有经办部门的代码", "D511000-MZ"),
        Column("basis", "补贴对象", ("basis",), True, choice(Basis),
               "What the standard is paid per: 人 (person), 户 (household) or 亩 (mu of land)",
               "按人、户或亩发放", "人"),
        Column("standard_yuan", "补贴标准（元）", ("standard_yuan",), True, yuan,
               "Amount in yuan, non-negative, at most 2 decimals (stored as integer fen), e.g. 650 or 12.50",
               "元，非负，最多两位小数，如 650 或 12.50", "650.00", numeric=NUM_ANY),
        Column("standard_from", "标准生效日期", ("standard_from", "valid_from"), False, day,
               "Date YYYY-MM-DD (same formats as other dates) from which a changed 补贴标准 applies: claims "
               "of periods starting on or after it; empty: the first day of the current month (Beijing "
               "time), or every period for a new item",
               "日期，所属期第一天在此日期及以后的申请按新标准计算；为空：标准有变化时自本月1日起，新项目适用所有期次",
               "2027-01-01"),
        Column("frequency", "发放频次", ("frequency",), True, choice(Frequency),
               "One of 月, 季, 半年, 年, 一次性", "月、季、半年、年、一次性之一", "月"),
        Column("village_publicity", "是否村级公示", ("village_publicity",), False, boolean,
               "是 or 否; empty: 是", "填“是”或“否”，为空视为是", "是"),
        Column("means_tested", "是否家庭经济状况核查", ("means_tested",), False, boolean,
               "是 or 否; empty: 否", "填“是”或“否”，为空视为否", "是"),
        Column("description", "说明", ("description",), False, text(2000, multiline=True),
               "Free text, at most 2000 characters; line breaks allowed",
               "不超过2000字", "按月发放至社保卡", numeric=NUM_ANY),
    ),
))


_PERIOD_FROM_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def period_text(value: str) -> str:
    """A claim period as written (2026-11, 2026Q4, 2026H2, 2026, 2026年11月...). Whether it fits
    the item's frequency is checked with the item. Excel turns a typed 2026-11 into the date
    2026-11-01: a first-of-month date is read back as that month."""
    v = value.strip()
    m = _PERIOD_FROM_DATE.match(v)
    if m:
        if m.group(3) != "01":
            raise ValueError("期次应为月份、季度、半年或年度（如 2026-11、2026Q4），不是具体日期")
        return f"{m.group(1)}-{m.group(2)}"
    if not v or len(v) > 12:
        raise ValueError("期次应写作 2026-11（月）、2026Q4（季）、2026H2（半年）或 2026（年）")
    return v


def quantity_text(value: str) -> str:
    """A quantity as written; whether it fits the item's basis (人/户: 1, 亩: area) is checked with the item."""
    v = value.strip()
    try:
        number = Decimal(v)
    except InvalidOperation:
        raise ValueError("数量应为数字，如 12.5") from None
    if not number.is_finite() or number <= 0:
        raise ValueError("数量应为大于0的数字，如 12.5")
    return v


_kind(Kind(
    name="applications", label="补贴申请名单", perm=Perm.APPLICATION_LIST, key="id_number", scoped=True,
    summary="A department's list of subsidy claims (部门名单): one application per row, entered at the "
            "item's list station.",
    columns=(
        _id_column(),
        Column("name", "姓名", ("name",), True, person_name,
               "Cross-check: must equal the name registered for this ID number",
               "用于核对：须与人员库中该身份证号的姓名一致", "张三", numeric=NUM_ANY, mask=masking.mask_name),
        Column("item_code", "项目代码", ("item_code",), True, code(20),
               "Code of an existing subsidy item (of the importing department's sector for a county handler)",
               "已有补贴项目的代码（县级部门只能申报本部门主管的项目）", "ZS007"),
        Column("period", "期次", ("period", "发放期次"), True, period_text,
               "By the item's frequency: 2026-11 (月), 2026Q4 (季), 2026H2 (半年), 2026 (年, 一次性); also "
               "2026年11月, 2026年第四季度, 2026年下半年, 2026年. A first-of-month date cell counts as that month",
               "按项目发放周期填写：2026-11（月）、2026Q4（季）、2026H2（半年）、2026（年、一次性）；"
               "也可写 2026年11月、2026年第四季度、2026年下半年", "2026-11"),
        Column("quantity", "数量", ("quantity",), False, quantity_text,
               "Items paid per 亩: the area in mu, > 0, at most 2 decimals. Items paid per 人 or 户: empty or 1",
               "按亩发放的项目填面积（亩，最多两位小数）；按人、按户发放的项目留空或填1", "12.5",
               numeric=NUM_ANY),
        Column("note", "说明", ("note", "申请说明"), False, text(500, multiline=True),
               "Free text for the reviewers, at most 500 characters", "给审核人员的说明，不超过500字",
               "2026年11月低保名单", numeric=NUM_ANY),
    ),
))


def budget_year(value: str) -> int:
    v = value.strip().removesuffix("年")
    if not v.isdigit() or not 2000 <= int(v) <= 2099:
        raise ValueError("年度应为2000至2099之间的四位年份，如 2026")
    return int(v)


_kind(Kind(
    name="budget", label="补贴资金指标", perm=Perm.BUDGET_MANAGE, key="item_code", scoped=False,
    summary="Budget allocations (指标) per item, year and funding level, entered by city finance.",
    columns=(
        Column("item_code", "项目代码", ("item_code",), True, code(20), "Code of an existing subsidy item",
               "已有补贴项目的代码", "ZS007"),
        Column("year", "年度", ("year", "预算年度"), True, budget_year,
               "Budget year, 2000 to 2099 (2026 or 2026年)", "预算年度，2000至2099，如 2026", "2026"),
        Column("funding_level", "资金级次", ("funding_level",), True, choice(FundingLevel),
               "One of 中央, 省, 市, 县", "中央、省、市、县之一", "中央"),
        Column("amount_yuan", "指标金额（元）", ("amount_yuan", "指标金额"), True, yuan,
               "The allocation in yuan, non-negative, at most 2 decimals (stored as integer fen); it replaces "
               "the amount stored for the same item, year and level",
               "元，非负，最多两位小数；同一项目、年度、级次再次导入时以新金额为准", "1250000.00", numeric=NUM_ANY),
        Column("note", "文件依据", ("note", "指标文号"), False, text(200),
               "The allocation's document or a remark, at most 200 characters", "指标文号或说明，不超过200字",
               "川财社〔2026〕12号", numeric=NUM_ANY),
    ),
))


def _digits(value: str, max_len: int, what: str) -> str:
    v = value.strip()
    if not v.isdigit() or len(v) > max_len:
        raise ValueError(f"{what}应为不超过{max_len}位的数字")
    return v


IGNORED_HEADERS = ("序号", "备注", "no", "no.", "remark", "remarks", "note", "notes")
"""Columns accepted and ignored in every kind: a running number and a free remark."""


def get_kind(name: str) -> Kind | None:
    return KINDS.get(name.strip().lower())


def markdown_columns(kind: Kind) -> str:
    """The column table of one kind, as it appears in docs/data-formats.md."""
    lines = ["| header (中文) | also accepted | required | format | example |", "| --- | --- | --- | --- | --- |"]
    for c in kind.columns:
        aliases = ", ".join(f"`{a}`" for a in c.aliases)
        lines.append(f"| {c.header} | {aliases} | {'yes' if c.required else 'no'} | {c.fmt} | `{c.example}` |")
    return "\n".join(lines)
