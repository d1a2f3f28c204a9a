"""The registry: a bank code -> its connector, built from the bank's template in `banks/` (or another
folder of templates). A new bank is a new template file, not a change to the code."""

from __future__ import annotations

from pathlib import Path

from yikatong.core.errors import NotFound
from yikatong.disbursement.bank.files import WrittenFile
from yikatong.disbursement.bank.flat import FlatConnector
from yikatong.disbursement.bank.iso20022 import IsoConnector
from yikatong.disbursement.bank.records import BatchFile
from yikatong.disbursement.bank.template import BANKS_DIR, BankTemplate, shipped_templates

Connector = FlatConnector | IsoConnector


def connector_of(template: BankTemplate) -> Connector:
    return IsoConnector(template) if template.is_xml else FlatConnector(template)


def registry(folder: Path = BANKS_DIR) -> dict[str, Connector]:
    """Every bank with a template in `folder`, by bank code."""
    return {code: connector_of(t) for code, t in shipped_templates(folder).items()}


def connector_for(bank_code: str, folder: Path = BANKS_DIR) -> Connector:
    connectors = registry(folder)
    if bank_code not in connectors:
        raise NotFound(f"银行 {bank_code} 没有文件模板（{folder}/{bank_code}.toml）")
    return connectors[bank_code]


def export_recorded(connector: Connector, batch: BatchFile, folder: Path) -> list[WrittenFile]:
    """Export a batch into `folder` (the restricted folder: the files carry clear account numbers) and
    say, per file, its path, SHA-256 (computed from the bytes as written), record count and total in fen,
    for the core to record."""
    return connector.export_files(batch, folder)
