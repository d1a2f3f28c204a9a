"""Why a bank could not pay a record: ISO 20022 external status reason codes (the codes banks put in
pain.002 and in their flat returns) and what a clerk reads for each."""

from __future__ import annotations

REASONS: dict[str, str] = {
    "AC01": "账号有误",
    "AC03": "收款账号无效",
    "AC04": "账户已销户",
    "AC06": "账户已冻结",
    "AC07": "收款账户已销户",
    "AG01": "账户状态不允许入账",
    "AM04": "余额不足",
    "AM05": "重复支付",
    "BE01": "户名不符",
    "MD07": "收款人已死亡",
    "RR03": "收款人名称或地址缺失",
    "NARR": "其他原因（见说明）",
}

# What the bank simulator draws its failures from, with weights: frozen and cancelled cards first, as
# at the counters (insufficient funds is the treasury's problem, not a card's, so it is never drawn).
SIMULATED: tuple[tuple[str, int], ...] = (
    ("AC06", 30), ("AC04", 25), ("BE01", 20), ("AC01", 15), ("MD07", 5), ("AG01", 5),
)


def reason_text(code: str, given: str = "") -> str:
    """The Chinese reason: the bank's own words when it gave some, else the table's."""
    if given:
        return given
    return REASONS.get(code, f"银行未说明原因（代码 {code}）" if code else "银行未说明原因")
