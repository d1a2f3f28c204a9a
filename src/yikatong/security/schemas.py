from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=40)
    password: str = Field(min_length=1, max_length=200)


class LoginOut(BaseModel):
    token: str
    expires_in_hours: int


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    role_label: str
    region_code: str
    department_code: str | None
    bank_code: str | None
    permissions: list[str]


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    username: str
    role: str
    action: str
    object_type: str
    object_id: str
    region_code: str | None
    detail: str
    ip: str


class AuditPage(BaseModel):
    total: int
    page: int
    size: int
    items: list[AuditEventOut]
