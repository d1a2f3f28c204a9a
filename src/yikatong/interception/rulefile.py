"""A rule as a readable SQL file: a header of `-- key: value` lines, then one SELECT.

```sql
-- code: DECEASED
-- name: 死亡后仍申领
-- severity: 高
-- items: all
-- datasets: deaths
-- explanation: 申请人在所属期结束前已死亡……
--   (an indented comment line continues the previous key)
-- param: some_limit_fen = 10000000   用 $some_limit_fen 引用
SELECT a.application_id, '死亡日期 ' || d.death_date AS evidence
FROM applications a JOIN persons p USING (person_id) JOIN deaths d ON d.id_hash = p.id_hash
WHERE d.death_date <= a.period_end
```

`items` says which applications the rule applies to: `all`, `means_tested` (items that need a
means test), `basis:人,户` (items paid per person or household) or item codes separated by commas.
The engine applies it, so a rule's SQL need not repeat it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from yikatong.core.errors import Invalid
from yikatong.interception.models import Severity

RULES_DIR = Path(__file__).resolve().parent / "rules"
CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{2,39}$")
_HEADER = re.compile(r"^--\s*([a-z_]+)\s*:\s*(.*)$")
_CONTINUATION = re.compile(r"^--\s{2,}(.*)$")
_PARAM = re.compile(r"^([a-z][a-z0-9_]*)\s*=\s*(-?\d+)\s*(.*)$")
KEYS = ("code", "name", "severity", "items", "datasets", "explanation", "param")


@dataclass(frozen=True)
class ItemScope:
    """Which applications a rule applies to."""

    kind: str  # all / means_tested / basis / codes
    values: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ItemScope:
        text = text.strip()
        if text in ("", "all", "全部"):
            return cls("all")
        if text == "means_tested":
            return cls("means_tested")
        if text.startswith("basis:"):
            values = tuple(v.strip() for v in text[6:].split(",") if v.strip())
            if not values or any(v not in ("人", "户", "亩") for v in values):
                raise Invalid("items 的 basis: 后只能列出 人、户、亩")
            return cls("basis", values)
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        if not all(re.fullmatch(r"[0-9A-Za-z_\-]{1,20}", v) for v in values):
            raise Invalid("items 应为 all、means_tested、basis:人,户 或以逗号分隔的补贴项目代码")
        return cls("codes", values)

    def __str__(self) -> str:
        if self.kind == "basis":
            return "basis:" + ",".join(self.values)
        return ",".join(self.values) if self.kind == "codes" else self.kind

    def label(self) -> str:
        if self.kind == "basis":
            return "按" + "、".join(self.values) + "计发的项目"
        labels = {"all": "全部项目", "means_tested": "困难救助类（需家庭经济状况核查）项目"}
        return labels.get(self.kind, "、".join(self.values))

    def sql_condition(self, item_alias: str = "i") -> str:
        """A DuckDB condition on the items table (values are checked by parse, so inlining is safe)."""
        if self.kind == "all":
            return "TRUE"
        if self.kind == "means_tested":
            return f"{item_alias}.means_tested"
        column = "basis" if self.kind == "basis" else "item_code"
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in self.values)
        return f"{item_alias}.{column} IN ({quoted})"


@dataclass(frozen=True)
class RuleSpec:
    code: str
    name: str
    severity: str
    items: ItemScope
    datasets: tuple[str, ...]
    explanation: str
    sql: str
    params: dict[str, int] = field(default_factory=dict)
    param_notes: dict[str, str] = field(default_factory=dict)

    @property
    def sql_sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def params_json(self) -> str:
        return json.dumps(self.params, ensure_ascii=False, sort_keys=True)


def parse_rule_text(text: str, source: str = "规则") -> RuleSpec:
    """Read a rule file's text. Raises Invalid with a Chinese message naming what is missing."""
    header: dict[str, str] = {}
    params: dict[str, int] = {}
    notes: dict[str, str] = {}
    body: list[str] = []
    last_key = None
    for line in text.splitlines():
        stripped = line.strip()
        if body or not stripped.startswith("--"):
            if stripped or body:
                body.append(line)
            continue
        continuation = _CONTINUATION.match(stripped)
        match = _HEADER.match(stripped)
        if match and match.group(1) in KEYS:
            key, value = match.group(1), match.group(2).strip()
            if key == "param":
                p = _PARAM.match(value)
                if not p:
                    raise Invalid(f"{source}：参数应写成 -- param: 名称 = 整数 说明")
                params[p.group(1)] = int(p.group(2))
                notes[p.group(1)] = p.group(3).strip()
            else:
                header[key] = value
            last_key = key
        elif continuation and last_key and last_key != "param":
            header[last_key] = header[last_key] + continuation.group(1).strip()
        # other comment lines before the SQL are remarks
    missing = [k for k in ("code", "name", "severity", "items", "datasets", "explanation") if not header.get(k)]
    if missing:
        raise Invalid(f"{source}：文件头缺少 {'、'.join(missing)}")
    sql = "\n".join(body).strip().rstrip(";").strip()
    if not sql:
        raise Invalid(f"{source}：没有SQL语句")
    return make_spec(code=header["code"], name=header["name"], severity=header["severity"], items=header["items"],
                     datasets=header["datasets"], explanation=header["explanation"], sql=sql, params=params,
                     param_notes=notes)


def make_spec(*, code: str, name: str, severity: str, items: str, datasets: str | tuple[str, ...], explanation: str,
              sql: str, params: dict[str, int] | None = None, param_notes: dict[str, str] | None = None) -> RuleSpec:
    code = code.strip()
    if not CODE_PATTERN.match(code):
        raise Invalid("规则代码应以大写字母开头，由3至40位大写字母、数字和下划线组成")
    if severity not in {s.value for s in Severity}:
        raise Invalid("严重程度应为 高、中 或 低")
    if not name.strip() or len(name.strip()) > 60:
        raise Invalid("规则名称不能为空，且不超过60个字符")
    if isinstance(datasets, str):
        datasets = tuple(d.strip() for d in datasets.split(",") if d.strip() and d.strip() != "none")
    return RuleSpec(code=code, name=name.strip(), severity=severity, items=ItemScope.parse(items),
                    datasets=tuple(datasets), explanation=explanation.strip(), sql=sql.strip().rstrip(";").strip(),
                    params=dict(params or {}), param_notes=dict(param_notes or {}))


def builtin_rules(directory: Path = RULES_DIR) -> list[RuleSpec]:
    """The rule files shipped with the platform, in file-name order."""
    specs = [parse_rule_text(path.read_text(encoding="utf-8"), path.name) for path in sorted(directory.glob("*.sql"))]
    codes = [s.code for s in specs]
    duplicated = {c for c in codes if codes.count(c) > 1}
    if duplicated:
        raise Invalid(f"规则代码重复：{'、'.join(sorted(duplicated))}")
    return specs
