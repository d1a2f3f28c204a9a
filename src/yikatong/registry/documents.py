"""Attached documents (电子档案): each file is stored once, named by its SHA-256, under
`YKT_DATA_DIR/documents/ab/abcdef...`; the `documents` row carries its name, type and size.

Storing the same bytes twice gives the same row and the same file, so a document attached to several
cases takes the space once, and the hash proves the file was not changed since it was stored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from yikatong.core.errors import NotFound
from yikatong.core.settings import get_settings
from yikatong.registry.models import Document


def document_path(sha256: str) -> Path:
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("invalid sha256")
    return get_settings().documents_dir / sha256[:2] / sha256


def _write_once(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename, so a reader never sees half a document.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_document(session: Session, data: bytes, filename: str, content_type: str, now: datetime,
                   uploaded_by: int | None = None) -> Document:
    """Store the bytes (once) and return their `documents` row (existing or new, flushed)."""
    sha = hashlib.sha256(data).hexdigest()
    _write_once(document_path(sha), data)
    existing = session.get(Document, sha)
    if existing is not None:
        return existing
    doc = Document(sha256=sha, filename=filename[:200], content_type=content_type[:100], size=len(data),
                   uploaded_at=now, uploaded_by=uploaded_by)
    session.add(doc)
    session.flush()
    return doc


def read_document(sha256: str) -> bytes:
    """The stored bytes, checked against their hash (a changed file is refused, not served)."""
    path = document_path(sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound("文档文件不存在") from None
    if hashlib.sha256(data).hexdigest() != sha256.lower():
        raise ValueError(f"文档内容与登记的哈希不一致：{sha256}")
    return data
