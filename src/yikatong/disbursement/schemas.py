"""What the payment loop's API returns. Amounts are integer fen; dates are Beijing dates."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class JobStartedOut(BaseModel):
    job_id: int
    status: str = Field(description="任务状态：排队中")
    url: str = Field(description="查询进度和结果：GET 此地址（/api/v1/jobs/{id}）；失败时 error 为中文原因，逐行列明")


class FileOut(BaseModel):
    id: int
    kind: str = Field(description="代发文件、回盘文件、银行对账单 或 国库支付明细")
    file_no: int
    name: str
    records: int
    total_fen: int
    sha256: str
    state: str = Field(description="已生成、已导入 或 已删除")
    by_name: str
    at: datetime


class BatchOut(BaseModel):
    id: int
    number: str
    item_code: str
    period: str
    year: int
    bank_code: str
    region_code: str
    status: str = Field(description="待审批、已审批、已发送、已回盘、已对账 或 已撤销")
    order_count: int
    total_fen: int
    made_by_name: str
    approved_by_name: str | None


class BatchDetailOut(BatchOut):
    order_counts: dict[str, int] = Field(description="支付指令按状态的笔数")
    files: list[FileOut]


class DifferenceOut(BaseModel):
    order_id: int | None
    end_to_end_id: str
    kind: str = Field(description="差异类型，如 银行未回盘、银行对账单无支出、失败但国库未退回")
    order_fen: int | None
    bank_fen: int | None = Field(description="银行对账单上该笔的净额（支出减退回）")
    treasury_fen: int | None = Field(description="国库支付明细上该笔的净额")


class ReconciliationOut(BaseModel):
    id: int
    batch_id: int | None
    day: date | None
    orders: int
    orders_fen: int
    paid_fen: int
    failed_fen: int
    bank_out_fen: int
    bank_back_fen: int
    treasury_out_fen: int
    treasury_back_fen: int
    balanced: bool
    differences: int
    summary: str
    by_name: str
    at: datetime
    difference_rows: list[DifferenceOut] = Field(description="差异明细（至多1000条）")


class FailureOut(BaseModel):
    order_id: int
    application_number: str
    beneficiary: str = Field(description="补贴对象姓名（脱敏）")
    item_name: str
    period: str
    amount_fen: int
    bank_name: str
    account: str = Field(description="收款账号（脱敏）")
    reason: str = Field(description="银行退回原因")
    attempt: int
    rework: str = Field(description="待处理、可重发 或 已重发")
    rework_note: str
    batch_number: str


class ReleaseIn(BaseModel):
    order_ids: list[int] = Field(min_length=1, max_length=1000)
    note: str = Field(min_length=1, max_length=200, description="处理意见，如：已核实户名，银行已更正")


class ReleaseOut(BaseModel):
    released: int


class RateOut(BaseModel):
    key: str = Field(description="批次编号、补贴项目代码、银行代码或县级区划代码")
    label: str
    answered: int = Field(description="银行已答复的首次支付笔数")
    first_paid: int
    first_rate: float = Field(description="首次成功率（0至1）")
    applications: int
    finally_paid: int
    final_rate: float = Field(description="最终成功率（0至1，含重发）")
