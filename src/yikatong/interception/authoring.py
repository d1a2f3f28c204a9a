"""Rules written by supervisors (监督人员自定义比对规则): check the SQL, keep every version, dry-run a
version on the whole city, switch it on or off.

The SQL is checked with sqlglot before it is stored, and what is stored and run is sqlglot's own
rendering of the tree it checked (so DuckDB runs exactly what was proved harmless, not a text that
a different parser might read otherwise). A rule must be ONE read-only query:

- statement: SELECT, a set operation (UNION / INTERSECT / EXCEPT) or WITH ... SELECT; no write,
  DDL, ATTACH, COPY, PRAGMA, SET, INSTALL/LOAD, CALL, EXPORT/IMPORT anywhere in the tree (a write
  hidden in a CTE is refused too), no SELECT ... INTO, no WITH RECURSIVE;
- tables: only the rule tables (interception.tables.RULE_TABLES) or a CTE in scope, by a plain
  name (no db.schema.table, no file name such as 'a.csv', no function in FROM such as read_csv);
- functions: an allow-list. Functions sqlglot knows are allowed by class (string, date, number,
  conditional, aggregate and window functions); functions it does not know (exp.Anonymous) only if
  their name is in a short list of harmless DuckDB functions. Everything else — getenv,
  current_setting, read_*, *_scan, glob, query, query_table, pragma_*, duckdb_*, sniff_csv... — is
  refused by not being on the list, so a new DuckDB function is refused until someone adds it;
- columns: every column must exist (sqlglot's qualify against interception.tables.validator_schema);
- output: the query returns `application_id` and `evidence` (and may return `amount_fen` and
  `fact_key`: without it the rule's code is the fact key, one flag per application — docs/rules.md);
- parameters: `$name` only when declared (`-- param: name = 123`), and every declared one is used.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlglot
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.tokens import TokenType

from yikatong.core.errors import Forbidden, Invalid, NotFound
from yikatong.interception.models import Rule, RuleOrigin, RuleVersion
from yikatong.interception.rulefile import RuleSpec, builtin_rules, make_spec, parse_rule_text
from yikatong.interception.tables import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, RULE_TABLES, validator_schema
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm

DIALECT = "duckdb"
SQL_MAX = 20_000
SAMPLE_ROWS = 20
_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

# ---------------------------------------------------------------- what a rule may use

# Statements (and clauses) that write, change the schema, touch files or the session. Refused
# wherever they appear in the tree, with the keyword named.
_FORBIDDEN_NODES: dict[str, str] = {
    "Delete": "DELETE", "Update": "UPDATE", "Insert": "INSERT", "Merge": "MERGE", "Drop": "DROP",
    "Create": "CREATE", "Alter": "ALTER", "TruncateTable": "TRUNCATE", "Attach": "ATTACH", "Detach": "DETACH",
    "Copy": "COPY", "Pragma": "PRAGMA", "Set": "SET", "Install": "INSTALL", "Export": "EXPORT", "Use": "USE",
    "Describe": "DESCRIBE", "Summarize": "SUMMARIZE", "Show": "SHOW", "Transaction": "BEGIN", "Commit": "COMMIT",
    "Rollback": "ROLLBACK", "Into": "INTO", "Kill": "KILL", "Cache": "CACHE", "Uncache": "UNCACHE",
    "Refresh": "REFRESH", "Grant": "GRANT", "Revoke": "REVOKE", "Comment": "COMMENT", "Analyze": "ANALYZE",
    "LoadData": "LOAD", "Command": "",  # Command: whatever sqlglot could not parse (LOAD, CALL, ...): its keyword
}
_FORBIDDEN_CLASSES = tuple(getattr(exp, n) for n in _FORBIDDEN_NODES if hasattr(exp, n))
_FORBIDDEN_BASES = tuple(getattr(exp, n) for n in ("DML", "DDL") if hasattr(exp, n))
# First words of statements sqlglot cannot parse at all (so the message still names them).
_FORBIDDEN_WORDS = {"DELETE", "UPDATE", "INSERT", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE", "ATTACH", "DETACH",
                    "COPY", "PRAGMA", "SET", "RESET", "INSTALL", "LOAD", "FORCE", "CALL", "EXPORT", "IMPORT", "USE",
                    "DESCRIBE", "SUMMARIZE", "SHOW", "BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT", "VACUUM",
                    "ANALYZE", "EXECUTE", "PREPARE", "DEALLOCATE", "GRANT", "REVOKE", "COMMENT", "UPDATE_EXTENSIONS"}

# Functions sqlglot knows, allowed by class name (a name missing from this sqlglot version is skipped).
_ALLOWED_FUNCTION_CLASSES = (
    # conditional and casts
    "Case", "If", "Coalesce", "Nullif", "Greatest", "Least", "Cast", "TryCast", "Exists",
    # aggregates and windows
    "Count", "CountIf", "Sum", "Avg", "Min", "Max", "AnyValue", "ArrayAgg", "GroupConcat", "LogicalOr",
    "LogicalAnd", "Stddev", "StddevPop", "StddevSamp", "Variance", "VariancePop", "Median", "ArgMax", "ArgMin",
    "ApproxDistinct", "First", "Last", "FirstValue", "LastValue", "NthValue", "Lag", "Lead", "RowNumber", "Rank",
    "DenseRank", "PercentRank", "CumeDist", "Ntile", "Quantile", "PercentileCont", "PercentileDisc", "Mode",
    "BoolAnd", "BoolOr",
    # text
    "Left", "Right", "Length", "Lower", "Upper", "Trim", "Substring", "Concat", "ConcatWs", "Replace", "Pad",
    "SplitPart", "Split", "StrPosition", "StartsWith", "EndsWith", "Contains", "RegexpLike", "RegexpExtract",
    "RegexpReplace", "RegexpSplit", "Reverse", "Repeat", "Initcap", "Format", "Levenshtein", "MD5", "SHA", "SHA2",
    "Chr", "Ascii", "Unicode", "Lpad", "Rpad", "StrToDate", "StrToTime", "TimeToStr", "ToChar", "ArrayToString",
    "ArrayJoin",
    # numbers
    "Abs", "Round", "Floor", "Ceil", "Sign", "Mod", "Pow", "Sqrt", "Ln", "Log", "Exp", "Div", "SafeDivide",
    # dates and times
    "CurrentDate", "CurrentTimestamp", "DateDiff", "DateAdd", "DateSub", "DatetimeDiff", "DatetimeAdd",
    "DatetimeSub", "TimestampDiff", "TimestampAdd", "TimestampSub", "Extract", "Year", "Month", "Day", "Quarter",
    "Week", "WeekOfYear", "DayOfWeek", "DayOfWeekIso", "DayOfMonth", "DayOfYear", "DateFromParts", "TimestampTrunc",
    "DateTrunc", "TimeTrunc", "Date", "TsOrDsToDate", "TsOrDsAdd", "TsOrDsDiff", "DateStrToDate", "LastDay",
    "TimeToUnix", "UnixToTime", "MakeInterval", "ToDays",
    # lists and structs
    "Array", "ArrayContains", "ArraySize", "ArrayLength", "ArrayDistinct", "ArraySort", "ArrayFilter",
    "ArrayConcat", "ArrayFirst", "ArrayLast", "ArrayUniqueAgg", "Explode", "Struct", "StructExtract", "Bracket",
    "Transform", "Filter", "Lambda",
)
ALLOWED_FUNCTION_CLASSES: tuple[type, ...] = tuple(
    getattr(exp, n) for n in _ALLOWED_FUNCTION_CLASSES if isinstance(getattr(exp, n, None), type))
# DuckDB functions sqlglot does not know (parsed as exp.Anonymous), allowed by name.
ALLOWED_ANONYMOUS = frozenset({
    "age", "date_part", "datepart", "prefix", "suffix", "printf", "today", "now", "dayname", "monthname",
    "yearweek", "isodow", "isoyear", "epoch_ms", "strip_accents", "lcase", "ucase", "jaro_similarity",
    "jaro_winkler_similarity", "jaccard", "damerau_levenshtein", "hamming", "mismatches", "len", "strlen",
    "bit_length", "octet_length", "ifnull", "nvl", "list_contains", "list_has", "list_has_any", "list_has_all",
    "list_sort", "list_distinct", "list_unique", "list_value", "list_extract", "list_element", "array_extract",
    "array_has", "list_aggregate", "list_string_agg", "string_agg", "bool_and", "bool_or", "arbitrary", "mode",
    "fsum", "favg", "product", "histogram", "list", "datesub", "datetrunc", "make_timestamp", "make_time",
    "to_years", "to_months", "to_days", "century", "decade", "millennium", "era", "regexp_full_match",
    "regexp_extract_all", "string_split_regex", "str_split_regex", "nullif", "greatest", "least", "hash",
    "row_number", "count_star", "trunc", "even", "gcd", "lcm", "isnan", "isinf", "isfinite", "cardinality",
    "list_transform", "list_filter", "list_apply", "array_transform", "array_filter",
    # plain names, as DuckDB's method-call syntax (a.name.upper()) leaves them
    "upper", "lower", "trim", "ltrim", "rtrim", "length", "substr", "substring", "left", "right", "replace",
    "concat", "concat_ws", "contains", "starts_with", "ends_with", "abs", "round", "floor", "ceil", "strftime",
    "strptime", "year", "month", "day", "coalesce",
})


@dataclass(frozen=True)
class CheckedSQL:
    """A rule's SQL that passed every check."""

    sql: str  # sqlglot's rendering of the checked tree (what is stored and run)
    tables: tuple[str, ...]  # rule tables read (platform and shared), sorted
    datasets: tuple[str, ...]  # the shared data sets among them (the datasets header)
    params: tuple[str, ...]  # $names used
    columns: tuple[str, ...]  # output columns


def _refuse_statement(keyword: str) -> Invalid:
    return Invalid(f"规则只能是查询语句（SELECT），不允许使用 {keyword}")


def _tables_list() -> str:
    return "、".join(RULE_TABLES)


def _statements(sql: str) -> list[list]:
    """The tokens of each statement (split at semicolons), empty statements dropped."""
    tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
    chunks: list[list] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            chunks.append([])
        else:
            chunks[-1].append(token)
    return [c for c in chunks if c]


def _parse(sql: str) -> exp.Expression:
    text = (sql or "").strip()
    if not text:
        raise Invalid("请填写规则的SQL语句")
    if len(text) > SQL_MAX:
        raise Invalid(f"SQL语句过长（超过{SQL_MAX}个字符）")
    try:
        chunks = _statements(text)
    except TokenError as e:
        raise Invalid(f"SQL语法错误：{_first_line(e)}") from None
    if not chunks:
        raise Invalid("请填写规则的SQL语句")
    if len(chunks) > 1:
        raise Invalid("只能包含一条SQL语句")
    try:
        parsed = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except ParseError as e:
        first = chunks[0][0].text.upper()
        if first in _FORBIDDEN_WORDS:
            raise _refuse_statement(first + (" DATABASE" if first in ("EXPORT", "IMPORT") else "")) from None
        where = ""
        if e.errors and e.errors[0].get("line"):
            where = f"（第{e.errors[0]['line']}行第{e.errors[0]['col']}列附近）"
        raise Invalid(f"SQL语法错误{where}：{_first_line(e)}") from None
    if len(parsed) != 1:
        raise Invalid("只能包含一条SQL语句")
    return parsed[0]


def _first_line(e: Exception) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines()[0][:200]


def _keyword(node: exp.Expression) -> str:
    name = type(node).__name__
    keyword = _FORBIDDEN_NODES.get(name)
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return keyword or name.upper()


def _check_statements(tree: exp.Expression) -> None:
    if isinstance(tree, exp.Command):
        raise _refuse_statement(_keyword(tree))
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_CLASSES) or isinstance(node, _FORBIDDEN_BASES):
            raise _refuse_statement(_keyword(node))
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise _refuse_statement(type(tree).__name__.upper())
    for node in tree.find_all(exp.With):
        if node.args.get("recursive"):
            raise Invalid("不允许递归查询（WITH RECURSIVE）")


def _with_of(node: exp.Expression) -> exp.With | None:
    return node.args.get("with_") or node.args.get("with")


def _visible_ctes(table: exp.Table) -> set[str]:
    """CTE names a table reference can see: every CTE of an enclosing query's WITH, except that
    inside a CTE's own definition only the CTEs written before it count (a CTE that names itself
    would otherwise make DuckDB look for a file of that name)."""
    names: set[str] = set()
    child: exp.Expression = table
    parent = table.parent
    while parent is not None:
        with_ = _with_of(parent)
        if with_ is not None:
            ctes = list(with_.expressions)
            if child is with_:
                inside = next((i for i, c in enumerate(ctes) if _contains(c, table)), len(ctes))
                names.update(c.alias_or_name.lower() for c in ctes[:inside])
            else:
                names.update(c.alias_or_name.lower() for c in ctes)
        child, parent = parent, parent.parent
    return names


def _contains(root: exp.Expression, node: exp.Expression) -> bool:
    while node is not None:
        if node is root:
            return True
        node = node.parent
    return False


def _check_tables(tree: exp.Expression) -> tuple[str, ...]:
    read: set[str] = set()
    for cte in tree.find_all(exp.CTE):
        if not _PLAIN_NAME.match(cte.alias_or_name.lower()):
            raise Invalid(f"临时结果（WITH）的名称“{cte.alias_or_name}”只能由英文字母、数字和下划线组成")
    for table in tree.find_all(exp.Table):
        target = table.this
        if not isinstance(target, exp.Identifier):
            name = target.name if isinstance(target, exp.Anonymous) else (
                target.sql_name() if isinstance(target, exp.Func) else target.sql(DIALECT))
            raise Invalid(f"不允许在FROM中使用函数或读取文件：{name.lower()}（规则只能读取平台提供的数据表）")
        full = ".".join(p.name for p in table.parts)
        name = table.name.lower()
        if table.args.get("db") or table.args.get("catalog"):
            raise Invalid(f"不允许访问数据表 {full}，可用的表：{_tables_list()}")
        if not _PLAIN_NAME.match(name):
            raise Invalid(f"不允许读取文件或访问数据表 {full}，可用的表：{_tables_list()}")
        if name in _visible_ctes(table):
            continue
        if name not in RULE_TABLES:
            raise Invalid(f"不允许访问数据表 {full}，可用的表：{_tables_list()}")
        read.add(name)
    return tuple(sorted(read))


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _check_functions(tree: exp.Expression) -> None:
    for node in tree.walk():
        if not isinstance(node, exp.Func) or isinstance(node, exp.Binary | exp.Unary | exp.Connector):
            continue  # operators (AND, OR, NOT, ||, +...) that sqlglot models as functions
        if isinstance(node, exp.Anonymous):
            if str(node.name).lower() in ALLOWED_ANONYMOUS:
                continue
        elif isinstance(node, ALLOWED_FUNCTION_CLASSES):
            continue
        raise Invalid(f"不允许使用函数 {_function_name(node)}（规则中只能使用常用的文本、日期、数值、条件和汇总函数）")


def _check_params(tree: exp.Expression, declared: Mapping[str, int]) -> tuple[str, ...]:
    used: set[str] = set()
    for node in tree.find_all(exp.Placeholder, exp.Parameter):
        name = node.name if isinstance(node.this, str) else (node.this.name if node.this is not None else "")
        if not name or name.isdigit():
            raise Invalid(f"只能使用已声明的命名参数（$名称），不能使用 {node.sql(DIALECT)}")
        if name not in declared:
            raise Invalid(f"参数 ${name} 未声明：请在文件头写 -- param: {name} = 整数 说明")
        used.add(name)
    unused = sorted(set(declared) - used)
    if unused:
        raise Invalid(f"参数 {'、'.join('$' + n for n in unused)} 已声明但未在SQL中使用")
    return tuple(sorted(used))


_UNKNOWN_COLUMN = re.compile(r"Unknown column: (\S+)")
_UNRESOLVED = re.compile(r"Column '([^']+)' could not be resolved(?: for table: '([^']+)')?")


def _column_message(error: OptimizeError, tables: tuple[str, ...]) -> str:
    text = str(error)
    if m := _UNKNOWN_COLUMN.search(text):
        return f"列 {m.group(1)} 不存在（在所用的数据表中都没有这一列）"
    if m := _UNRESOLVED.search(text):
        column, table = m.group(1), m.group(2)
        if table:
            return f"表 {table} 中没有列 {column}"
        owners = [t for t in tables if column in RULE_TABLES[t].column_names]
        if len(owners) > 1:
            return f"列 {column} 在多张表（{'、'.join(owners)}）中都有，请写成 表别名.{column}"
        return f"列 {column} 不存在（在所用的数据表中都没有这一列）"
    return f"无法核对SQL中的列：{_first_line(error)}"


def _check_columns(tree: exp.Expression, tables: tuple[str, ...]) -> tuple[str, ...]:
    try:
        qualified = qualify(tree.copy(), schema=validator_schema(), dialect=DIALECT, validate_qualify_columns=True,
                            quote_identifiers=False)
    except OptimizeError as e:
        raise Invalid(_column_message(e, tables)) from None
    except Exception as e:  # noqa: BLE001 - sqlglot raises several kinds on constructs it cannot resolve
        raise Invalid(f"无法核对SQL中的列：{_first_line(e)}") from None
    columns = tuple(c.lower() for c in qualified.named_selects)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise Invalid(f"查询结果必须包含列：{'、'.join(REQUIRED_COLUMNS)}（缺少 {'、'.join(missing)}；"
                      f"可选列：{'、'.join(OPTIONAL_COLUMNS)}）")
    return columns


def validate_sql(sql: str, params: Mapping[str, int] | None = None) -> CheckedSQL:
    """Check a rule's SQL (see the module docstring). Raises Invalid with a Chinese message that
    names the refused keyword, table, column or function."""
    tree = _parse(sql)
    _check_statements(tree)
    tables = _check_tables(tree)
    _check_functions(tree)
    used = _check_params(tree, params or {})
    columns = _check_columns(tree, tables)
    datasets = tuple(t for t in tables if RULE_TABLES[t].shared)
    return CheckedSQL(sql=tree.sql(dialect=DIALECT, pretty=True), tables=tables, datasets=datasets, params=used,
                      columns=columns)


@dataclass(frozen=True)
class CheckedRule:
    """A rule file (or form) whose header and SQL passed the checks."""

    spec: RuleSpec  # with the checked SQL and the data sets it reads
    checked: CheckedSQL
    warnings: tuple[str, ...] = ()


def check_rule(*, code: str, name: str, explanation: str, severity: str, items: str, sql: str,
               params: Mapping[str, int] | None = None, param_notes: Mapping[str, str] | None = None,
               declared_datasets: str | None = None) -> CheckedRule:
    """Check a whole rule: the header fields (rulefile.make_spec) and the SQL."""
    if not (explanation or "").strip():
        raise Invalid("请填写规则说明：写明规则查什么、为什么可疑、经办部门应如何核实")
    checked = validate_sql(sql, params)
    spec = make_spec(code=code, name=name, severity=severity, items=items, datasets=checked.datasets,
                     explanation=explanation, sql=checked.sql, params=dict(params or {}),
                     param_notes=dict(param_notes or {}))
    warnings: list[str] = []
    if declared_datasets is not None:
        declared = {d.strip() for d in declared_datasets.split(",") if d.strip() and d.strip() != "none"}
        declared -= {t.name for t in RULE_TABLES.values() if not t.shared}  # platform tables need no mention
        if declared != set(checked.datasets):
            warnings.append(f"文件头 datasets 写的是 {'、'.join(sorted(declared)) or 'none'}，"
                            f"SQL实际读取的共享数据是 {'、'.join(checked.datasets) or '无'}，以SQL为准")
    return CheckedRule(spec, checked, tuple(warnings))


def check_rule_text(text: str, source: str = "规则文件") -> CheckedRule:
    """A rule file (header + SQL, rulefile format) checked as a supervisor's rule."""
    spec = parse_rule_text(text, source)
    return check_rule(code=spec.code, name=spec.name, explanation=spec.explanation, severity=spec.severity,
                      items=str(spec.items), sql=spec.sql, params=spec.params, param_notes=spec.param_notes,
                      declared_datasets=",".join(spec.datasets))


# ---------------------------------------------------------------- versions


def get_rule(session: Session, code: str) -> Rule:
    rule = session.get(Rule, (code or "").strip())
    if rule is None:
        raise NotFound(f"比对规则“{code}”不存在")
    return rule


def get_version(session: Session, code: str, number: int | None = None) -> RuleVersion:
    """A version of a rule; without a number the latest."""
    rule = get_rule(session, code)
    number = number if number is not None else rule.latest_version
    version = session.scalar(select(RuleVersion).where(RuleVersion.rule_code == rule.code,
                                                       RuleVersion.version == number))
    if version is None:
        raise NotFound(f"比对规则“{rule.code}”没有第{number}版")
    return version


def save_rule(session: Session, author: User, *, code: str, name: str, explanation: str, severity: str, items: str,
              sql: str, params: Mapping[str, int] | None = None, now: datetime, ip: str = "") -> RuleVersion:
    """Store a supervisor's rule: a new code is a new rule (off until a version is dry-run and
    switched on) with version 1; an existing supervisor rule gets a new version (versions are never
    edited; saving what the latest version already says adds nothing and returns it). Built-in
    rules cannot be overwritten."""
    from yikatong.interception.screening import new_version, spec_of

    require_perm(author, Perm.RULE_MANAGE)
    checked = check_rule(code=code, name=name, explanation=explanation, severity=severity, items=items, sql=sql,
                         params=params)
    spec = checked.spec
    rule = session.get(Rule, spec.code)
    shipped = {s.code for s in builtin_rules()}  # also before the files were first synced into the database
    if (rule is not None and rule.origin != RuleOrigin.SUPERVISOR.value) or (rule is None and spec.code in shipped):
        raise Forbidden("内置规则不能修改，请另建规则（换一个规则代码）")
    if rule is None:
        rule = Rule(code=spec.code, origin=RuleOrigin.SUPERVISOR.value, name=spec.name, active=False,
                    active_version=None, latest_version=0, created_at=now, updated_at=now)
        session.add(rule)
        session.flush()
    elif rule.latest_version:
        latest = get_version(session, rule.code, rule.latest_version)
        if spec_of(latest) == spec:
            return latest
    version = new_version(session, rule, spec, author, now)
    audit.record(session, author, "rule.save", "rule", rule.code, now, ip=ip,
                 detail={"version": version.version, "sql_sha256": version.sql_sha256, "datasets": version.datasets})
    session.flush()
    return version


# ---------------------------------------------------------------- dry run, on and off


@dataclass
class DryRun:
    """试运行: what a version would flag on the whole city now (nothing is written but the figures)."""

    code: str
    version: int
    hits: int  # applications it would flag
    amount_fen: int  # money at stake
    sample: list[dict] = field(default_factory=list)  # number, item, region, evidence, amount_fen
    seconds: float = 0.0
    applications: int = 0  # live applications checked


def dry_run(engine: Engine, session: Session, version: RuleVersion, now: datetime, actor: User | None = None,
            progress=None, ip: str = "") -> DryRun:
    """Run one version over the whole city's committed data (city snapshot + current shared data),
    keep the figures on the version. No flag is written. An error in the rule's SQL is raised as
    Invalid (nothing is stored)."""
    from yikatong.interception.engine import run_rule
    from yikatong.interception.screening import spec_of
    from yikatong.interception.snapshot import city_snapshot
    from yikatong.registry.service import region_names
    from yikatong.sharing.store import current_snapshots

    if actor is not None:
        require_perm(actor, Perm.RULE_MANAGE)
    spec = spec_of(version)
    started = time.perf_counter()
    snap = city_snapshot(engine, current_snapshots(session), progress=progress)
    try:
        result = run_rule(snap, spec)
        if result.error:
            raise Invalid(result.error)
        applications = snap.counts.get("applications", 0)
        snap.con.register("dry_run_hits", result.hits)
        totals = snap.con.sql("SELECT count(*), COALESCE(sum(amount_fen), 0) FROM dry_run_hits").fetchall()[0]
        rows = snap.con.sql(f"""
            SELECT a.number, a.item_code, i.name, a.region_code, h.evidence, h.amount_fen
            FROM dry_run_hits h JOIN applications a USING (application_id) JOIN items i ON i.item_code = a.item_code
            ORDER BY h.amount_fen DESC, a.number LIMIT {SAMPLE_ROWS}""").fetchall()
    finally:
        snap.close()
    names = region_names(session, {r[3] for r in rows})
    sample = [dict(number=r[0], item_code=r[1], item_name=r[2], region_code=r[3],
                   region_name=names.get(r[3], r[3]), evidence=r[4], amount_fen=int(r[5] or 0)) for r in rows]
    outcome = DryRun(code=version.rule_code, version=version.version, hits=int(totals[0]),
                     amount_fen=int(totals[1]), sample=sample, seconds=round(time.perf_counter() - started, 3),
                     applications=applications)
    version.dry_run_at = now
    version.dry_run_hits = outcome.hits
    version.dry_run_amount_fen = outcome.amount_fen
    audit.record(session, actor, "rule.dry_run", "rule", version.rule_code, now, ip=ip,
                 detail={"version": version.version, "hits": outcome.hits, "amount_fen": outcome.amount_fen})
    session.flush()
    return outcome


def activate(session: Session, user: User | None, version: RuleVersion, now: datetime, ip: str = "") -> Rule:
    """Switch a rule on at this version (启用). Only a version that has been dry-run: whoever
    switches it on has seen how many applications it flags and how much money is at stake."""
    if user is not None:
        require_perm(user, Perm.RULE_MANAGE)
    if version.dry_run_at is None:
        raise Invalid("请先试运行：试运行后才能启用这一版规则")
    rule = get_rule(session, version.rule_code)
    before = rule.active_version if rule.active else None
    rule.active = True
    rule.active_version = version.version
    rule.updated_at = now
    version.activated_at = now
    version.activated_by = user.id if user else None
    audit.record(session, user, "rule.activate", "rule", rule.code, now, ip=ip,
                 detail={"version": version.version, "before": before})
    session.flush()
    return rule


def deactivate(session: Session, user: User | None, rule: Rule, now: datetime, ip: str = "") -> Rule:
    """Switch a rule off (停用). Its flags stay; it no longer runs. The version number is kept, so
    the page still shows which version ran last."""
    if user is not None:
        require_perm(user, Perm.RULE_MANAGE)
    was = rule.active_version if rule.active else None
    rule.active = False
    rule.updated_at = now
    audit.record(session, user, "rule.deactivate", "rule", rule.code, now, ip=ip, detail={"version": was})
    session.flush()
    return rule


PARAM_MAX = 10**15  # fen: far above any real limit, still exact everywhere


def set_param(session: Session, user: User | None, code: str, name: str, value: int, reason: str, now: datetime,
              ip: str = "") -> RuleVersion:
    """Change one parameter of a rule (调整规则参数), e.g. the vehicle value limit: a new version with
    the same SQL and the new value, carrying who, when and why. A rule running its latest version
    runs the new one at once (the SQL is unchanged and already checked); a built-in rule keeps the
    value when its file changes."""
    from yikatong.interception.screening import new_version, spec_of, sync_builtin_rules

    if user is not None:
        require_perm(user, Perm.RULE_MANAGE)
    sync_builtin_rules(session, now)
    rule = get_rule(session, code)
    latest = get_version(session, rule.code)
    params = params_of(latest)
    name = (name or "").strip().lstrip("$")
    if name not in params:
        known = "、".join(params) or "无"
        raise Invalid(f"规则{rule.code}没有参数“{name}”（可调参数：{known}）")
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > PARAM_MAX:
        raise Invalid(f"参数值应为整数，绝对值不超过{PARAM_MAX}")
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("请填写调整原因")
    if params[name] == value:
        raise Invalid(f"参数 {name} 已是 {value}，未作改动")
    was_running = rule.active and rule.active_version == latest.version
    spec = dataclasses.replace(spec_of(latest), params={**params, name: value})
    version = new_version(session, rule, spec, user, now)
    version.reason = reason[:1000]
    if rule.origin == RuleOrigin.BUILTIN.value:
        rule.params_set = json.dumps({**json.loads(rule.params_set or "{}"), name: value}, ensure_ascii=False,
                                     sort_keys=True)
    if was_running:
        rule.active_version = version.version
        version.activated_at = now
        version.activated_by = user.id if user else None
    audit.record(session, user, "rule.set_param", "rule", rule.code, now, ip=ip,
                 detail={"version": version.version, "param": name, "before": params[name], "after": value,
                         "reason": reason[:1000], "running": was_running})
    session.flush()
    return version


def params_of(version: RuleVersion) -> dict[str, int]:
    return json.loads(version.params or "{}")


_PARAM_LINE = re.compile(r"^\$?([a-z][a-z0-9_]*)\s*[=＝]\s*(-?\d+)\s*(.*)$")


def parse_params_text(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """The parameters box of the page: one `name = 123 说明` a line -> (values, notes)."""
    values: dict[str, int] = {}
    notes: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _PARAM_LINE.match(line)
        if not m:
            raise Invalid(f"参数第{number}行应写成 名称 = 整数 说明，如 limit_fen = 200000 月养老金上限（分）")
        values[m.group(1)] = int(m.group(2))
        notes[m.group(1)] = m.group(3).strip()
    return values, notes


def params_text(version: RuleVersion) -> str:
    return "\n".join(f"{k} = {v}" for k, v in params_of(version).items())
