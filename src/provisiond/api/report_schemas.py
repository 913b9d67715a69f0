"""Bodies of the reports: a leaver's signed receipt, the keys that sign receipts, the access
posture. Documented here; a receipt is sent as the exact JSON that was signed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ReadBackOut(BaseModel):
    state: str  # inactive | absent | active
    at: str


class ReceiptLineOut(BaseModel):
    app_id: str
    app: str
    account_status: str
    action: str | None
    remote_id: str | None
    applied_at: str | None
    read_back: ReadBackOut | None
    last_synced_at: str | None
    pending_task: str | None
    status: str  # confirmed | not confirmed | active


class ReceiptUserOut(BaseModel):
    id: str
    login: str
    status: str
    status_changed_at: str | None


class ReceiptBodyOut(BaseModel):
    kind: str
    version: int
    issued_at: str
    user: ReceiptUserOut
    scope: str
    status: str  # confirmed | not confirmed
    apps: list[ReceiptLineOut]


class SignatureOut(BaseModel):
    algorithm: str
    key_id: str
    public_key: str
    fields: dict[str, str]  # path of each field -> SHA-256 of its canonical JSON
    document: str  # SHA-256 of the whole receipt's canonical JSON
    value: str


class ReceiptOut(BaseModel):
    receipt: ReceiptBodyOut
    signature: SignatureOut


class SigningKeyOut(BaseModel):
    id: str
    algorithm: str
    public_key: str
    created_at: datetime
    retired_at: datetime | None


class FindingUserOut(BaseModel):
    id: str
    login: str


class FindingOut(BaseModel):
    kind: str
    summary: str
    count: int
    console: str
    api: str
    app_id: str | None
    app: str | None
    since: datetime | None
    reason: str | None
    users: list[FindingUserOut]


class PostureOut(BaseModel):
    generated_at: datetime
    findings: list[FindingOut]
    totals: dict[str, int]
    notes: list[str]
