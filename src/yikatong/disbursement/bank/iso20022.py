"""ISO 20022 bank files: pain.001.001.09 (credit transfer initiation, 代发) out; pain.002.001.12 (payment
status report, 回盘) and camt.053.001.08 (bank-to-customer statement, 对账单) in. Amounts are written
from integer fen as yuan with two decimals and read back to fen exactly, never through float. The
official schemas are in `xsd/` (see its README for where they come from)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

from lxml import etree

from yikatong.core.clock import beijing_time
from yikatong.core.errors import Invalid
from yikatong.disbursement.bank import checks
from yikatong.disbursement.bank.checks import Declared, Problems, ReturnRow, StatementRow
from yikatong.disbursement.bank.files import (
    KIND_BATCH,
    FileHeader,
    HashedFile,
    WrittenFile,
    amounts_of,
    bulk,
    chunks,
    export_parts,
)
from yikatong.disbursement.bank.reasons import reason_text
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord, ReturnRecord, ReturnStatus, StatementLine
from yikatong.disbursement.bank.template import BankTemplate

PAIN001 = "pain.001.001.09"
PAIN002 = "pain.002.001.12"
CAMT053 = "camt.053.001.08"
XSD_DIR = Path(__file__).with_name("xsd")
PAID_STATUSES = frozenset({"ACSC", "ACCP"})  # settled on the creditor's account / accepted for it
FAILED_STATUS = "RJCT"
CCY = "CNY"
_BLOCK = 5_000  # transactions joined and written at a time


def ns(message: str) -> str:
    return f"urn:iso:std:iso:20022:tech:xsd:{message}"


@cache
def _schema(message: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{message}.xsd")))


def schema_errors(path: Path, message: str) -> list[str]:
    """The official schema's complaints about a file ([] when it is valid)."""
    schema = _schema(message)
    try:
        schema.assertValid(etree.parse(str(path), _parser()))
    except etree.DocumentInvalid:
        return [f"第 {e.line} 行：{e.message}" for e in schema.error_log]
    except etree.XMLSyntaxError as exc:
        return [str(exc)]
    return []


def yuan_text(fen: int) -> str:
    """12345 -> "123.45": exact, from integer fen."""
    if fen < 0:
        raise ValueError("ISO 20022 amounts are not negative")
    return f"{fen // 100}.{fen % 100:02d}"


def fen_of(text: str | None) -> int:
    """"123.45" -> 12345 exactly; ValueError for anything that is not a whole number of fen."""
    if text and len(text) > 3 and text[-3] == "." and text.isascii():
        digits = text[:-3] + text[-2:]  # the usual shape, two decimals: one integer conversion
        if digits.isdigit():
            return int(digits)
    whole, dot, frac = (text or "").strip().partition(".")
    if not (whole.isascii() and whole.isdigit()) or dot and not (frac.isascii() and frac.isdigit()):
        raise ValueError(text)
    frac = frac.ljust(2, "0")
    if frac[2:].strip("0"):
        raise ValueError(text)
    return int(whole) * 100 + int(frac[:2])


def message_id(batch_number: str, file_no: int, file_count: int) -> str:
    """A pain.001 MsgId naming the batch and which of its files this is, e.g. FF20261205000001-002of003."""
    return f"{batch_number}-{file_no:03d}of{file_count:03d}"


def split_message_id(msg_id: str) -> tuple[str, int, int] | None:
    batch, _, part = msg_id.rpartition("-")
    no, _, count = part.partition("of")
    if not (batch and no.isdigit() and count.isdigit()):
        return None
    return batch, int(no), int(count)


def _stamp(moment: datetime) -> str:
    return beijing_time(moment).replace(microsecond=0).isoformat()


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def _iter(path: Path, message: str, tags: Sequence[str]) -> Iterator[etree._Element]:
    """Elements of a (possibly very large) file as they end, each cleared once used and dropped from
    its parent now and then, so memory stays flat whatever the file's size."""
    q = [f"{{{ns(message)}}}{t}" for t in tags]
    n = 0
    try:
        for _event, el in etree.iterparse(str(path), events=("end",), tag=q, resolve_entities=False,
                                          no_network=True, huge_tree=True):
            yield el
            el.clear(keep_tail=False)
            n += 1
            if n % 1024 == 0 and (parent := el.getparent()) is not None:
                del parent[:-1]  # every earlier sibling has been seen already
    except etree.XMLSyntaxError as exc:
        raise Invalid(f"文件 {path.name} 不是完整的 XML：{exc}") from None


def _root_message(path: Path) -> str | None:
    """The message of an ISO 20022 file (e.g. "pain.001.001.09") from its root's namespace."""
    try:
        for _event, el in etree.iterparse(str(path), events=("start",), resolve_entities=False, no_network=True):
            uri = etree.QName(el).namespace or ""
            return uri.rsplit(":", 1)[-1] if uri.startswith("urn:iso:std:iso:20022:tech:xsd:") else None
    except etree.XMLSyntaxError:
        return None
    return None


class _Tx(NamedTuple):
    line: int
    e2e: str
    status: str
    code: str
    info: str
    amount: str | None


class IsoConnector:
    """A bank that takes pain.001 and answers with pain.002 and camt.053."""

    def __init__(self, template: BankTemplate):
        if not template.is_xml:
            raise ValueError(f"{template.code} is a flat-file template")
        self.template = template
        self.bank_code = template.code

    # --- the connector interface ---------------------------------------------------------------------

    def export_batch(self, batch: BatchFile, folder: Path) -> list[Path]:
        return [f.path for f in self.export_files(batch, folder)]

    def export_files(self, batch: BatchFile, folder: Path) -> list[WrittenFile]:
        return export_parts(batch, self.bank_code, folder, self.template.max_records_per_file, f".{PAIN001}.xml",
                            self.write_pain001)

    @bulk
    def read_return(self, path: Path, batch: BatchFile) -> list[ReturnRecord]:
        problems = Problems(f"回盘文件 {path.name} 与批次 {batch.batch_number} 不符")
        self._require(path, PAIN002, problems)
        declared: list[Declared] = []
        per_status: list[tuple[int, str, int | None, int | None]] = []
        txs: list[_Tx] = []
        orig: tuple[str, int, int] | None = None
        orig_line = 0
        t = f"{{{ns(PAIN002)}}}"
        tx_tag, e2e_tag, status_tag = t + "TxInfAndSts", t + "OrgnlEndToEndId", t + "TxSts"
        reason_tag, ref_tag = t + "StsRsnInf", t + "OrgnlTxRef"
        for el in _iter(path, PAIN002, ("OrgnlGrpInfAndSts", "TxInfAndSts")):
            if el.tag == tx_tag:
                e2e = status = code = info = ""
                amount = None
                for ch in el:  # children in one pass: several times faster than a findtext each
                    tag = ch.tag
                    if tag == e2e_tag:
                        e2e = ch.text or ""
                    elif tag == status_tag:
                        status = ch.text or ""
                    elif tag == reason_tag and not code:
                        code = ch.findtext(f"{t}Rsn/{t}Cd") or ""
                        info = ch.findtext(t + "AddtlInf") or ""
                    elif tag == ref_tag:
                        amount = ch.findtext(f"{t}Amt/{t}InstdAmt")
                txs.append(_Tx(el.sourceline, e2e, status, code, info, amount))
                continue
            orig_line = el.sourceline
            orig = split_message_id(el.findtext(t + "OrgnlMsgId") or "")
            declared.append(Declared("OrgnlNbOfTxs/OrgnlCtrlSum ", el.sourceline,
                                     _count(el.findtext(t + "OrgnlNbOfTxs"), el.sourceline, problems),
                                     _sum(el.findtext(t + "OrgnlCtrlSum"), el.sourceline, problems)))
            for s in el.iterfind(t + "NbOfTxsPerSts"):
                per_status.append((s.sourceline, s.findtext(t + "DtldSts") or "",
                                   _count(s.findtext(t + "DtldNbOfTxs"), s.sourceline, problems),
                                   _sum(s.findtext(t + "DtldCtrlSum"), s.sourceline, problems)))
        if orig is None or orig[0] != batch.batch_number:
            problems.add(orig_line or None, f"OrgnlMsgId 应为本批次 {batch.batch_number} 的代发文件报文号")
            problems.raise_if_any()
        assert orig is not None
        parts = chunks(batch.records, self.template.max_records_per_file)
        if orig[2] != len(parts) or not 1 <= orig[1] <= len(parts):
            problems.add(orig_line, f"OrgnlMsgId 的文件序号 {orig[1]}/{orig[2]} 与批次的 {len(parts)} 个文件不符")
            problems.raise_if_any()
        rows: list[ReturnRow] = []
        by_status: dict[str, list[int]] = {}
        for tx in txs:
            if tx.amount is None:
                problems.add(tx.line, f"流水号 {tx.e2e} 缺少原交易金额（OrgnlTxRef/Amt/InstdAmt）")
                continue
            amount = _amount(tx.amount, tx.line, problems)
            if tx.status not in PAID_STATUSES and tx.status != FAILED_STATUS:
                problems.add(tx.line, f"流水号 {tx.e2e} 的状态 {tx.status or '（空）'} 不是终态"
                                      "（应为 ACSC、ACCP 或 RJCT）")
                continue
            tally = by_status.setdefault(tx.status, [0, 0])
            tally[0] += 1
            tally[1] += amount
            paid = tx.status in PAID_STATUSES
            rows.append(ReturnRow(tx.line, tx.e2e, amount, paid, "" if paid else tx.code,
                                  "" if paid else reason_text(tx.code, tx.info)))
        for line, status, count, total in per_status:
            got = by_status.get(status, [0, 0])
            if count is not None and count != got[0]:
                problems.add(line, f"NbOfTxsPerSts 记载 {status} {count:,} 笔，文件实有 {got[0]:,} 笔")
            if total is not None and total != got[1]:
                problems.add(line, f"NbOfTxsPerSts 记载 {status} 金额 {checks.yuan(total)}，"
                                   f"文件实有 {checks.yuan(got[1])}")
        return checks.check_return(rows, parts[orig[1] - 1], declared, problems)

    @bulk
    def read_statement(self, path: Path, batch: BatchFile | None = None) -> list[StatementLine]:
        """Booked entries (Sts BOOK) with their EndToEndId; entries not booked yet are left out."""
        problems = Problems(f"对账单 {path.name} 有误" if batch is None
                            else f"对账单 {path.name} 与批次 {batch.batch_number} 不符")
        self._require(path, CAMT053, problems)
        t = f"{{{ns(CAMT053)}}}"
        amt_tag, sign_tag, sts_tag, day_tag, dtls_tag, e2e_tag = (
            t + x for x in ("Amt", "CdtDbtInd", "Sts", "BookgDt", "NtryDtls", "EndToEndId"))
        rows: list[StatementRow] = []
        days: dict[str, date | None] = {}
        summary: list[tuple[int, int | None, int | None, int | None]] = []
        entries = [0, 0, 0]  # every entry, booked or not: count, sum of amounts, net (debits positive)
        for el in _iter(path, CAMT053, ("Ntry", "TxsSummry")):
            line = el.sourceline
            if el.tag == t + "TxsSummry":
                tot = el.find(t + "TtlNtries")
                if tot is not None:
                    net_text, sign = tot.findtext(f"{t}TtlNetNtry/{t}Amt"), tot.findtext(f"{t}TtlNetNtry/{t}CdtDbtInd")
                    net = _sum(net_text, line, problems)
                    summary.append((line, _count(tot.findtext(t + "NbOfNtries"), line, problems),
                                    _sum(tot.findtext(t + "Sum"), line, problems),
                                    None if net is None else (-net if sign == "CRDT" else net)))
                continue
            status = direction = text = amount_text = ""
            dtls = None
            for ch in el:  # the entry's own children in one pass (choices: their first child's text)
                tag = ch.tag
                if tag == amt_tag:
                    amount_text = ch.text or ""
                elif tag == sign_tag:
                    direction = ch.text or ""
                elif tag == sts_tag:
                    status = ch[0].text or "" if len(ch) else ""
                elif tag == day_tag:
                    text = (ch[0].text or "")[:10] if len(ch) else ""
                elif tag == dtls_tag and dtls is None:
                    dtls = ch
            entry_fen = _amount(amount_text, line, problems)
            entries[0] += 1
            entries[1] += entry_fen
            entries[2] += -entry_fen if direction == "CRDT" else entry_fen
            if status != "BOOK":
                continue
            if text not in days:
                days[text] = _date(text)
            day = days[text]
            ids = [] if dtls is None else [e.text for e in dtls.iter(e2e_tag)]
            if day is None or direction not in ("DBIT", "CRDT") or not ids:
                problems.add(line, "记账条目缺少记账日期、借贷方向（DBIT/CRDT）或交易明细的 EndToEndId")
                continue
            if len(ids) == 1 and len(dtls) == 1:  # one transaction: the entry's amount and direction are its own
                if not ids[0] or ids[0] == "NOTPROVIDED":
                    problems.add(line, "交易明细缺少 EndToEndId")
                else:
                    rows.append(StatementRow(line, ids[0], -entry_fen if direction == "CRDT" else entry_fen, day))
                continue
            for tx in el.iterfind(f"{t}NtryDtls/{t}TxDtls"):  # a batch booking: one line per transaction
                e2e = tx.findtext(f"{t}Refs/{t}EndToEndId") or ""
                amount = _amount(tx.findtext(t + "Amt") or "", tx.sourceline, problems)
                if not e2e or e2e == "NOTPROVIDED":
                    problems.add(tx.sourceline, "交易明细缺少 EndToEndId")
                    continue
                sign = tx.findtext(t + "CdtDbtInd") or direction
                rows.append(StatementRow(tx.sourceline, e2e, -amount if sign == "CRDT" else amount, day))
        for line, count, gross, net in summary:  # TxsSummry counts entries (a batch booking is one entry)
            if count is not None and count != entries[0]:
                problems.add(line, f"TxsSummry 记载 {count:,} 个条目，文件实有 {entries[0]:,} 个")
            if gross is not None and gross != entries[1]:
                problems.add(line, f"TxsSummry 记载发生额合计 {checks.yuan(gross)}，文件实有 {checks.yuan(entries[1])}")
            if net is not None and net != entries[2]:
                problems.add(line, f"TxsSummry 记载净发生额 {checks.yuan(net)}（借方为正），文件实有 "
                                   f"{checks.yuan(entries[2])}")
        return checks.check_statement(rows, amounts_of(batch) if batch else None, [], problems)

    # --- what the bank reads and writes (the simulator) ---------------------------------------------

    def write_pain001(self, path: Path, header: FileHeader, records: Sequence[PaymentRecord]) -> WrittenFile:
        h = header
        msg = message_id(h.batch_number, h.file_no, h.file_count)
        ctrl, n = yuan_text(h.total_fen), str(h.record_count)
        debtor = escape(h.debtor_name)
        with HashedFile(path) as out:
            out.write(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns(PAIN001)}">\n<CstmrCdtTrfInitn>\n'
                f"<GrpHdr><MsgId>{msg}</MsgId><CreDtTm>{_stamp(h.created)}</CreDtTm><NbOfTxs>{n}</NbOfTxs>"
                f"<CtrlSum>{ctrl}</CtrlSum><InitgPty><Nm>{debtor}</Nm></InitgPty></GrpHdr>\n"
                f"<PmtInf><PmtInfId>{msg}</PmtInfId><PmtMtd>TRF</PmtMtd><NbOfTxs>{n}</NbOfTxs>"
                f"<CtrlSum>{ctrl}</CtrlSum><ReqdExctnDt><Dt>{beijing_time(h.created).date().isoformat()}</Dt>"
                f"</ReqdExctnDt><Dbtr><Nm>{debtor}</Nm></Dbtr><DbtrAcct><Id><Othr><Id>{escape(h.debtor_account)}"
                f"</Id></Othr></Id></DbtrAcct><DbtrAgt><FinInstnId><Nm>{escape(self.template.name)}</Nm>"
                f"<Othr><Id>{escape(h.bank_code)}</Id></Othr></FinInstnId></DbtrAgt>\n".encode())
            for start in range(0, len(records), _BLOCK):
                out.write("".join(_credit_transfer(r) for r in records[start:start + _BLOCK]).encode())
            out.write(b"</PmtInf>\n</CstmrCdtTrfInitn>\n</Document>\n")
        return WrittenFile(path, out.sha256, h.record_count, h.total_fen)

    @bulk
    def read_batch_file(self, path: Path) -> tuple[FileHeader, list[PaymentRecord]]:
        """A pain.001 as the bank reads it (for `ykt bank-sim`), checked against its NbOfTxs and CtrlSum."""
        problems = Problems(f"代发文件 {path.name} 有误")
        self._require(path, PAIN001, problems)
        t = f"{{{ns(PAIN001)}}}"
        records: list[PaymentRecord] = []
        head: dict[str, str] = {}
        declared: list[Declared] = []
        for el in _iter(path, PAIN001, ("GrpHdr", "CdtTrfTxInf", "DbtrAgt", "Dbtr", "DbtrAcct")):
            tag = el.tag[len(t):]
            if tag == "CdtTrfTxInf":
                f = {"PmtId": "", "Amt": "", "Cdtr": "", "CdtrAcct": "", "RmtInf": ""}
                for ch in el:
                    name = ch.tag[len(t):]
                    if name in f:
                        f[name] = ch.findtext(_PAIN001_PATHS[name]) or ""
                records.append(PaymentRecord(f["PmtId"], f["Cdtr"], f["CdtrAcct"],
                                             _amount(f["Amt"], el.sourceline, problems), f["RmtInf"]))
            elif tag == "GrpHdr":
                head.update(msg=el.findtext(t + "MsgId") or "", created=el.findtext(t + "CreDtTm") or "")
                declared.append(Declared("GrpHdr NbOfTxs/CtrlSum ", el.sourceline,
                                         _count(el.findtext(t + "NbOfTxs"), el.sourceline, problems),
                                         _sum(el.findtext(t + "CtrlSum"), el.sourceline, problems)))
            elif tag == "DbtrAgt":
                head["bank"] = el.findtext(f"{t}FinInstnId/{t}Othr/{t}Id") or ""
            elif tag == "Dbtr":
                head["debtor_name"] = el.findtext(t + "Nm") or ""
            else:
                head["debtor_account"] = el.findtext(f"{t}Id/{t}Othr/{t}Id") or ""
        split = split_message_id(head.get("msg", ""))
        if split is None:
            problems.add(None, f"MsgId {head.get('msg', '')!r} 不是本平台的报文号")
        try:
            created = datetime.fromisoformat(head.get("created", ""))
        except ValueError:
            problems.add(None, "GrpHdr 的 CreDtTm 不是有效时间")
        checks.check_declared(declared, len(records), sum(r.amount_fen for r in records), problems)
        problems.raise_if_any()
        assert split is not None
        header = FileHeader(KIND_BATCH, split[0], head.get("bank", self.bank_code), split[1], split[2], created,
                            head.get("debtor_account", ""), head.get("debtor_name", ""), len(records),
                            sum(r.amount_fen for r in records))
        return header, records

    def write_return(self, path: Path, batch_header: FileHeader, created: datetime,
                     answers: Sequence[tuple[PaymentRecord, ReturnRecord]]) -> WrittenFile:
        """A pain.002.001.12 answering every transaction of one pain.001."""
        h = batch_header
        msg = message_id(h.batch_number, h.file_no, h.file_count)
        total = sum(a.amount_fen for _, a in answers)
        tallies: dict[str, list[int]] = {}
        for _, a in answers:
            tally = tallies.setdefault("ACSC" if a.status is ReturnStatus.PAID else FAILED_STATUS, [0, 0])
            tally[0] += 1
            tally[1] += a.amount_fen
        group = "ACSC" if FAILED_STATUS not in tallies else FAILED_STATUS if "ACSC" not in tallies else "PART"
        per_status = "".join(f"<NbOfTxsPerSts><DtldNbOfTxs>{c}</DtldNbOfTxs><DtldSts>{s}</DtldSts>"
                             f"<DtldCtrlSum>{yuan_text(v)}</DtldCtrlSum></NbOfTxsPerSts>"
                             for s, (c, v) in sorted(tallies.items()))
        with HashedFile(path) as out:
            out.write(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns(PAIN002)}">\n<CstmrPmtStsRpt>\n'
                f"<GrpHdr><MsgId>R{msg}</MsgId><CreDtTm>{_stamp(created)}</CreDtTm></GrpHdr>\n"
                f"<OrgnlGrpInfAndSts><OrgnlMsgId>{msg}</OrgnlMsgId><OrgnlMsgNmId>{PAIN001}</OrgnlMsgNmId>"
                f"<OrgnlNbOfTxs>{len(answers)}</OrgnlNbOfTxs><OrgnlCtrlSum>{yuan_text(total)}</OrgnlCtrlSum>"
                f"<GrpSts>{group}</GrpSts>{per_status}</OrgnlGrpInfAndSts>\n"
                f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{msg}</OrgnlPmtInfId>\n".encode())
            for start in range(0, len(answers), _BLOCK):
                out.write("".join(_status(a) for _, a in answers[start:start + _BLOCK]).encode())
            out.write(b"</OrgnlPmtInfAndSts>\n</CstmrPmtStsRpt>\n</Document>\n")
        return WrittenFile(path, out.sha256, len(answers), total)

    def write_statement(self, path: Path, batch_header: FileHeader, created: datetime,
                        lines: Sequence[StatementLine]) -> WrittenFile:
        """A camt.053.001.08 of the paying account: one booked entry per line."""
        h = batch_header
        msg = message_id(h.batch_number, h.file_no, h.file_count)
        out_total = sum(x.amount_fen for x in lines if x.amount_fen > 0)
        back_total = -sum(x.amount_fen for x in lines if x.amount_fen < 0)
        net = out_total - back_total
        first = min((x.booked_on for x in lines), default=beijing_time(created).date())
        last = max((x.booked_on for x in lines), default=first)
        # The account was funded with the file's total just before: opening = total paid out, closing = returns.
        balances = (_balance("OPBD", out_total, first - timedelta(days=1)) + _balance("CLBD", back_total, last))
        with HashedFile(path) as out:
            out.write(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns(CAMT053)}">\n<BkToCstmrStmt>\n'
                f"<GrpHdr><MsgId>S{msg}</MsgId><CreDtTm>{_stamp(created)}</CreDtTm></GrpHdr>\n"
                f"<Stmt><Id>S{msg}</Id><CreDtTm>{_stamp(created)}</CreDtTm><Acct><Id><Othr>"
                f"<Id>{escape(h.debtor_account)}</Id></Othr></Id><Nm>{escape(h.debtor_name)}</Nm></Acct>\n"
                f"{balances}<TxsSummry><TtlNtries><NbOfNtries>{len(lines)}</NbOfNtries>"
                f"<Sum>{yuan_text(out_total + back_total)}</Sum><TtlNetNtry><Amt>{yuan_text(abs(net))}</Amt>"
                f"<CdtDbtInd>{'CRDT' if net < 0 else 'DBIT'}</CdtDbtInd></TtlNetNtry></TtlNtries></TxsSummry>\n"
                .encode())
            for start in range(0, len(lines), _BLOCK):
                out.write("".join(_entry(x) for x in lines[start:start + _BLOCK]).encode())
            out.write(b"</Stmt>\n</BkToCstmrStmt>\n</Document>\n")
        return WrittenFile(path, out.sha256, len(lines), net)

    def _require(self, path: Path, message: str, problems: Problems) -> None:
        found = _root_message(path)
        if found != message:
            problems.add(None, f"文件应为 ISO 20022 {message}，实为 {found or '其他格式'}")
            problems.raise_if_any()


_P1 = f"{{{ns(PAIN001)}}}"
_PAIN001_PATHS = {"PmtId": f"{_P1}EndToEndId", "Amt": f"{_P1}InstdAmt", "Cdtr": f"{_P1}Nm",
                  "CdtrAcct": f"{_P1}Id/{_P1}Othr/{_P1}Id", "RmtInf": f"{_P1}Ustrd"}


def is_iso20022(path: Path) -> str | None:
    """The ISO 20022 message a file holds, or None for any other file."""
    with path.open("rb") as f:
        start = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return _root_message(path) if start.startswith(b"<") else None


def _credit_transfer(r: PaymentRecord) -> str:
    if not 0 < len(r.account) <= 34 or not 0 < len(r.payee_name) <= 140 or len(r.purpose) > 140:
        raise Invalid(f"流水号 {r.end_to_end_id}：账号应为 1 至 34 个字符，户名 1 至 140 个字符，用途至多 140 个字符，"
                      "文件未生成")
    info = f"<RmtInf><Ustrd>{escape(r.purpose)}</Ustrd></RmtInf>" if r.purpose else ""
    return (f"<CdtTrfTxInf><PmtId><EndToEndId>{escape(r.end_to_end_id)}</EndToEndId></PmtId>"
            f'<Amt><InstdAmt Ccy="{CCY}">{yuan_text(r.amount_fen)}</InstdAmt></Amt>'
            f"<Cdtr><Nm>{escape(r.payee_name)}</Nm></Cdtr><CdtrAcct><Id><Othr><Id>{escape(r.account)}</Id></Othr>"
            f"</Id></CdtrAcct>{info}</CdtTrfTxInf>\n")


def _status(a: ReturnRecord) -> str:
    paid = a.status is ReturnStatus.PAID
    reason = "" if paid else (f"<StsRsnInf><Rsn><Cd>{escape(a.reason_code)}</Cd></Rsn>"
                              f"<AddtlInf>{escape(a.reason[:105])}</AddtlInf></StsRsnInf>")
    return (f"<TxInfAndSts><OrgnlEndToEndId>{escape(a.end_to_end_id)}</OrgnlEndToEndId>"
            f"<TxSts>{'ACSC' if paid else FAILED_STATUS}</TxSts>{reason}<OrgnlTxRef><Amt>"
            f'<InstdAmt Ccy="{CCY}">{yuan_text(a.amount_fen)}</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>\n')


def _entry(x: StatementLine) -> str:
    out = x.amount_fen > 0
    sign, family = ("DBIT", "ESCT") if out else ("CRDT", "RRTN")  # issued credit transfer / its return
    amount = yuan_text(abs(x.amount_fen))
    return (f'<Ntry><Amt Ccy="{CCY}">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            f"<BookgDt><Dt>{x.booked_on.isoformat()}</Dt></BookgDt><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd>"
            f"<SubFmlyCd>{family}</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs>"
            f"<EndToEndId>{escape(x.end_to_end_id)}</EndToEndId></Refs>"
            f'<Amt Ccy="{CCY}">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd></TxDtls></NtryDtls></Ntry>\n')


def _balance(kind: str, fen: int, day: date) -> str:
    return (f"<Bal><Tp><CdOrPrtry><Cd>{kind}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{CCY}\">{yuan_text(fen)}</Amt>"
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>\n")


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _amount(text: str, line: int | None, problems: Problems) -> int:
    try:
        return fen_of(text)
    except ValueError:
        problems.add(line, f"金额 {text!r} 不是以元为单位、至多两位小数的金额")
        return 0


def _count(text: str | None, line: int | None, problems: Problems) -> int | None:
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    problems.add(line, f"笔数 {text!r} 不是整数")
    return None


def _sum(text: str | None, line: int | None, problems: Problems) -> int | None:
    return None if text is None else _amount(text, line, problems)
