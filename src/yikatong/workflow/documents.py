"""Evidence files of applications: attached by content hash, read back checked and audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.core.errors import Conflict, NotFound
from yikatong.registry.documents import read_document
from yikatong.registry.models import Document
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.workflow.models import ApplicationDocument
from yikatong.workflow.service import get_application


def evidence_file(db: Session, user: User, application_id: int, sha256: str, now: datetime,
                         ip: str = "") -> tuple[Document, bytes]:
    """An evidence file of an application the user may read, checked against its hash; the read
    is audited like any look at personal papers."""
    app = get_application(db, user, application_id)
    sha256 = sha256.lower()
    linked = db.scalar(select(ApplicationDocument.id).where(ApplicationDocument.application_id == app.id,
                                                            ApplicationDocument.document_sha256 == sha256))
    if linked is None:
        raise NotFound("材料文件不存在")
    document = db.get(Document, sha256)
    try:
        data = read_document(document.sha256)
    except ValueError:
        raise Conflict("材料文件与登记的哈希不一致，可能已被篡改，已拒绝提供") from None
    audit.record(db, user, "document.read", "document", document.sha256, now, region_code=app.region_code,
                 ip=ip, detail={"application": app.number})
    return document, data
