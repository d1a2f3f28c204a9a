"""The shared data sets (共享数据集) and their columns: what a delivered file must hold, and what is
stored (and what rules may read) for each column.

A file column has a Chinese header (what agencies write) and an English alias; either is accepted.
An ID-number column is never stored in clear: it becomes `<key>_hash` (the same keyed hash as
`persons.id_number_hash`, so rules join on it) and `<key>_masked` (for evidence shown to people).
Amounts arrive in yuan (元, up to 2 decimals) and are stored as integer fen in `<key>` (e.g. value_fen).
docs/data-formats.md documents every column and is checked against these specs by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    ID_NUMBER = "id_number"  # 18-digit GB 11643 number -> <key>_hash, <key>_masked
    TEXT = "text"
    DATE = "date"  # YYYY-MM-DD (also YYYY/MM/DD, YYYYMMDD, Excel dates)
    YUAN = "yuan"  # yuan with up to 2 decimals -> integer fen
    DECIMAL2 = "decimal2"  # a quantity with up to 2 decimals -> integer hundredths (area_centi)
    INT = "int"
    REGION = "region"  # 12-digit statistical region code (or a 2/4/6/9-digit prefix, padded)
    CHOICE = "choice"  # one of `choices`


STORED_TYPES = {Kind.DATE: "DATE", Kind.YUAN: "BIGINT", Kind.DECIMAL2: "BIGINT", Kind.INT: "BIGINT"}
"""The stored (DuckDB) type of each kind of field; any other kind is VARCHAR. Parquet files and the
rule tables both take their types from here, so they cannot disagree."""


@dataclass(frozen=True)
class Field:
    key: str  # stored column name (for ID numbers and amounts, see `stored`)
    header: str  # Chinese header
    alias: str  # English header
    kind: Kind
    required: bool
    description: str  # Chinese, shown in docs and on the upload page
    max_len: int = 100
    choices: tuple[str, ...] = ()

    @property
    def stored(self) -> tuple[str, ...]:
        """The Parquet columns this field becomes."""
        if self.kind is Kind.ID_NUMBER:
            return (f"{self.key}_hash", f"{self.key}_masked")
        return (self.key,)

    @property
    def stored_types(self) -> tuple[str, ...]:
        """The DuckDB type of each stored column."""
        if self.kind is Kind.ID_NUMBER:
            return ("VARCHAR", "VARCHAR")
        return (STORED_TYPES.get(self.kind, "VARCHAR"),)


@dataclass(frozen=True)
class Dataset:
    code: str  # table name for rules and the CLI: deaths
    label: str  # 死亡人员
    provider: str  # the agency that usually delivers it
    summary: str  # one line, Chinese
    fields: tuple[Field, ...]
    sort_key: str = "id_hash"  # stored files are sorted by it, so point look-ups skip row groups
    # (column, prefix length): rows whose presence says which areas a delivery covers (hukou: the
    # counties it covers). Screening one claim keeps one row per such area beside the claim's people.
    coverage: tuple[str, int] | None = None

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)

    @property
    def stored_columns(self) -> tuple[str, ...]:
        return tuple(c for f in self.fields for c in f.stored)

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        """The columns rules join a delivery on: every keyed ID hash, and the card number."""
        return tuple(c for c in self.stored_columns if c.endswith("_hash") or c == "card_number")


def _id(key: str = "id", header: str = "身份证号码", alias: str = "id_number", required: bool = True,
        description: str = "公民身份号码（18位）") -> Field:
    return Field(key, header, alias, Kind.ID_NUMBER, required, description)


def _name(required: bool = True) -> Field:
    return Field("name", "姓名", "name", Kind.TEXT, required, "姓名", max_len=40)


HUKOU_STATUSES = ("正常", "迁出", "注销")
CARD_STATUSES = ("正常", "挂失", "冻结", "注销")
BUSINESS_ROLES = ("法定代表人", "股东", "负责人")
BUSINESS_STATUSES = ("存续", "吊销", "注销")

DATASETS: tuple[Dataset, ...] = (
    Dataset("hukou", "户籍人口", "市公安局", "户籍登记，每人一行，含迁入迁出", (
        _id(), _name(),
        Field("region_code", "户籍地区划代码", "region_code", Kind.REGION, True, "户籍所在村（社区）统计用区划代码"),
        Field("household_code", "户号", "household_code", Kind.TEXT, False, "户口簿户号", max_len=30),
        Field("status", "户籍状态", "status", Kind.CHOICE, True, "正常、迁出或注销", choices=HUKOU_STATUSES),
        Field("moved_in_on", "迁入日期", "moved_in_on", Kind.DATE, False, "迁入本户籍地的日期"),
        Field("moved_out_on", "迁出日期", "moved_out_on", Kind.DATE, False, "迁出或注销的日期"),
    ), coverage=("region_code", 6)),
    Dataset("deaths", "死亡人员", "市公安局、市卫健委、市民政局", "死亡登记与火化信息", (
        _id(), _name(),
        Field("death_date", "死亡日期", "death_date", Kind.DATE, True, "死亡日期"),
        Field("source", "信息来源", "source", Kind.TEXT, False, "户籍注销、医学死亡证明、火化记录等", max_len=40),
    )),
    Dataset("payroll", "财政供养人员", "市财政局", "机关事业单位在编在岗及财政发放工资人员", (
        _id(), _name(),
        Field("employer", "工作单位", "employer", Kind.TEXT, True, "工作单位名称", max_len=100),
        Field("start_on", "起始日期", "start_on", Kind.DATE, True, "开始领取财政工资的日期"),
        Field("end_on", "终止日期", "end_on", Kind.DATE, False, "停发日期，在职的留空"),
    )),
    Dataset("retirees", "退休人员", "市人社局", "领取基本养老金的退休人员", (
        _id(), _name(),
        Field("pension_fen", "月养老金（元）", "monthly_pension_yuan", Kind.YUAN, True, "每月基本养老金，单位元"),
        Field("retired_on", "退休日期", "retired_on", Kind.DATE, True, "开始领取养老金的日期"),
    )),
    Dataset("vehicles", "机动车", "市公安局交警支队", "登记在个人名下的机动车", (
        _id(header="车主身份证号码", alias="owner_id_number", description="车主公民身份号码"),
        Field("plate", "号牌号码", "plate", Kind.TEXT, True, "机动车号牌", max_len=12),
        Field("vehicle_type", "车辆类型", "vehicle_type", Kind.TEXT, True, "小型轿车、货车、摩托车、农用车等",
              max_len=20),
        Field("value_fen", "车辆价值（元）", "value_yuan", Kind.YUAN, True, "购置价或评估价，单位元"),
        Field("registered_on", "登记日期", "registered_on", Kind.DATE, True, "注册登记日期"),
    )),
    Dataset("businesses", "工商登记", "市市场监管局", "个人担任法定代表人、股东或负责人的市场主体", (
        _id(), _name(),
        Field("role", "身份", "role", Kind.CHOICE, True, "法定代表人、股东或负责人", choices=BUSINESS_ROLES),
        Field("company", "企业名称", "company", Kind.TEXT, True, "市场主体名称", max_len=100),
        Field("credit_code", "统一社会信用代码", "credit_code", Kind.TEXT, True, "18位统一社会信用代码",
              max_len=18),
        Field("capital_fen", "认缴出资（元）", "capital_yuan", Kind.YUAN, False, "认缴出资额，单位元"),
        Field("status", "登记状态", "status", Kind.CHOICE, True, "存续、吊销或注销", choices=BUSINESS_STATUSES),
        Field("registered_on", "成立日期", "registered_on", Kind.DATE, True, "成立日期"),
    )),
    Dataset("real_estate", "不动产", "市自然资源和规划局", "登记在个人名下的房屋", (
        _id(header="权利人身份证号码", alias="owner_id_number", description="权利人公民身份号码"),
        Field("certificate", "不动产权证号", "certificate", Kind.TEXT, True, "不动产权证书号", max_len=40),
        Field("area_centi", "建筑面积（平方米）", "area_m2", Kind.DECIMAL2, True, "建筑面积，最多两位小数"),
        Field("address", "坐落", "address", Kind.TEXT, False, "房屋坐落", max_len=200),
        Field("registered_on", "登记日期", "registered_on", Kind.DATE, True, "登记日期"),
    )),
    Dataset("prisoners", "服刑人员", "市司法局", "在押服刑人员", (
        _id(), _name(),
        Field("custody_from", "收押日期", "custody_from", Kind.DATE, True, "收押日期"),
        Field("custody_to", "释放日期", "custody_to", Kind.DATE, False, "释放日期，仍在押的留空"),
    )),
    Dataset("village_cadres", "村干部及近亲属", "市委组织部、市民政局", "村（社区）干部本人及其近亲属，每人一行", (
        _id(), _name(),
        Field("region_code", "任职村区划代码", "region_code", Kind.REGION, True, "干部任职的村（社区）区划代码"),
        Field("post", "职务", "post", Kind.TEXT, True, "干部本人的职务，如村支书、村主任", max_len=20),
        _id("cadre_id", "干部身份证号码", "cadre_id_number", True, "干部本人的公民身份号码（本人一行填自己的）"),
        Field("relation", "与干部关系", "relation", Kind.TEXT, True, "本人、配偶、父母、子女、兄弟姐妹等",
              max_len=10),
    )),
    Dataset("card_registry", "社保卡状态", "市人社局", "社会保障卡状态变更记录（发卡、挂失、冻结、注销）", (
        Field("card_number", "社会保障卡号", "card_number", Kind.TEXT, True, "社会保障卡号", max_len=20),
        _id(header="持卡人身份证号码", alias="holder_id_number", description="持卡人公民身份号码"),
        Field("status", "卡状态", "status", Kind.CHOICE, True, "正常、挂失、冻结或注销", choices=CARD_STATUSES),
        Field("changed_on", "变更日期", "changed_on", Kind.DATE, True, "状态变更（或发卡）日期"),
    )),
    Dataset("other_payments", "其他系统发放", "各行业部门", "其他系统（如省级平台、行业系统）已发放的补贴", (
        _id(), _name(),
        Field("item_code", "补贴项目代码", "item_code", Kind.TEXT, True, "本平台补贴项目代码", max_len=20),
        Field("period_start", "所属期起", "period_start", Kind.DATE, True, "补贴所属期的第一天"),
        Field("period_end", "所属期止", "period_end", Kind.DATE, True, "补贴所属期的最后一天"),
        Field("amount_fen", "发放金额（元）", "amount_yuan", Kind.YUAN, True, "发放金额，单位元"),
        Field("paid_on", "发放日期", "paid_on", Kind.DATE, True, "发放日期"),
        Field("system", "发放系统", "system", Kind.TEXT, True, "发放该笔资金的系统名称", max_len=60),
    )),
)

BY_CODE: dict[str, Dataset] = {d.code: d for d in DATASETS}


def dataset_or_none(code: str) -> Dataset | None:
    return BY_CODE.get(code)
