"""Dependencies point one way: every `yikatong` import in src/ is parsed with `ast` and checked
against the layers documented in docs/architecture.md ("Dependency direction").

A module may import a module of a lower layer, or of its own layer within its own domain. On top of
that, a view module (`views.py`, `*_views.py`) is imported only by `web.app` and by views of its own
domain: shared page helpers live in `web/` or in a service, never in another domain's views.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (layer, module patterns), lowest first.
    ("core", ("yikatong.core.*", "yikatong")),
    ("models", ("yikatong.*.models",)),
    ("all models", ("yikatong.models",)),
    ("security", ("yikatong.security.*",)),
    ("jobs", ("yikatong.jobs.*",)),
    ("registry", ("yikatong.registry.*",)),
    ("catalog", ("yikatong.catalog.*",)),
    ("notify", ("yikatong.notify.*",)),
    ("sharing", ("yikatong.sharing.*",)),
    ("flag marks", ("yikatong.workflow.flag_marks",)),
    ("screening", ("yikatong.interception.rulefile", "yikatong.interception.tables", "yikatong.interception.kept",
                   "yikatong.interception.snapshot", "yikatong.interception.engine",
                   "yikatong.interception.screening", "yikatong.interception.tallies")),
    ("workflow", ("yikatong.workflow.*",)),
    ("verification", ("yikatong.interception.service", "yikatong.interception.stats",
                      "yikatong.interception.authoring", "yikatong.interception.jobs")),
    ("disbursement", ("yikatong.disbursement.*", "yikatong.disbursement.bank.*")),
    ("imports", ("yikatong.imports.*",)),
    ("synth", ("yikatong.synth.*",)),
    ("web support", ("yikatong.web.deps", "yikatong.web.templating")),
    ("views and commands", ("yikatong.*.views", "yikatong.*.*_views", "yikatong.*.commands",
                            "yikatong.*.*_commands")),
    ("app", ("yikatong.web.app", "yikatong.cli", "yikatong.job_kinds", "yikatong.migrations.*")),
]

KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
"""(importer, imported) pairs allowed against the layers, each with a comment saying why. None today:
sharing.store used to take its stored types from interception.tables; both now take them from
sharing.datasets."""


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(glob).replace(r"\*", "[a-z_0-9]+") + "$")


# A pattern naming the module (`*.views`) wins over one naming only its domain (`workflow.*`).
_RULES = sorted(((rank, name, _pattern(p), p.endswith(".*")) for rank, (name, patterns) in enumerate(LAYERS)
                 for p in patterns), key=lambda rule: rule[3])


def layer_of(module: str) -> tuple[int, str]:
    if module.count(".") == 1 and (SRC / module.replace(".", "/") / "__init__.py").exists():
        return 0, "package"  # a domain's __init__.py: empty, so it sits with core
    for rank, name, pattern, _wide in _RULES:
        if pattern.match(module):
            return rank, name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def domain_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else module  # yikatong.<domain>.<module>


def is_view(module: str) -> bool:
    return module.endswith(".views") or module.endswith("_views")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every module under root/yikatong (migration scripts left out)."""
    found = {}
    for path in sorted((root / "yikatong").rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        if "versions" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every yikatong module a file imports, at top level or inside a function."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.split(".")[0] == "yikatong")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "yikatong":
                continue
            for alias in node.names:  # `from yikatong.workflow import service` imports a module
                sub = f"{node.module}.{alias.name}"
                targets.add(sub if sub in known else node.module)
    return targets


def violations(root: Path, exceptions: set[tuple[str, str]] = frozenset()) -> list[str]:
    found = modules(root)
    known = set(found)
    problems = []
    for module, path in found.items():
        rank, name = layer_of(module)
        for target in sorted(imports_of(path, known)):
            if target == module or (module, target) in exceptions:
                continue
            target_rank, target_name = layer_of(target)
            same_domain = domain_of(module) == domain_of(target)
            if is_view(target) and module != "yikatong.web.app" and not (is_view(module) and same_domain):
                problems.append(f"{module} imports the view {target}")
            elif target_rank > rank or (target_rank == rank and not same_domain):
                problems.append(f"{module} ({name}) imports {target} ({target_name})")
    return problems


def test_every_import_points_down_the_layers():
    assert violations(SRC, KNOWN_EXCEPTIONS) == []


def test_known_exceptions_are_still_needed():
    found = modules(SRC)
    for module, target in KNOWN_EXCEPTIONS:
        assert target in imports_of(found[module], set(found)), f"remove the exception {module} -> {target}"


def test_docs_name_every_layer_in_order():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("Dependency direction"):text.index("## Data flow")]
    positions = []
    for name, patterns in LAYERS:
        for pattern in patterns:
            shown = pattern.removeprefix("yikatong.") if pattern != "yikatong" else pattern
            assert f"`{shown}`" in section, f"docs/architecture.md does not name `{shown}` ({name})"
        positions.append(section.index(f"`{patterns[0].removeprefix('yikatong.')}`"))
    assert positions == sorted(positions), "docs/architecture.md lists the layers in another order"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    ({"yikatong/core/money.py": "from yikatong.workflow import service\n", "yikatong/workflow/service.py": ""},
     "yikatong.core.money (core) imports yikatong.workflow.service (workflow)"),
    ({"yikatong/registry/models.py": "from yikatong.catalog.models import Bank\n", "yikatong/catalog/models.py": ""},
     "yikatong.registry.models (models) imports yikatong.catalog.models (models)"),
    ({"yikatong/workflow/models.py": "def f():\n    from yikatong.workflow.service import decide\n",
      "yikatong/workflow/service.py": ""},
     "yikatong.workflow.models (models) imports yikatong.workflow.service (workflow)"),
    ({"yikatong/workflow/service.py": "import yikatong.workflow.views\n", "yikatong/workflow/views.py": ""},
     "yikatong.workflow.service imports the view yikatong.workflow.views"),
    ({"yikatong/workflow/views.py": "from yikatong.interception import views\n",
      "yikatong/interception/views.py": ""},
     "yikatong.workflow.views imports the view yikatong.interception.views"),
    ({"yikatong/sharing/importer.py": "from yikatong.imports.readers import Num\n",
      "yikatong/imports/readers.py": ""},
     "yikatong.sharing.importer (sharing) imports yikatong.imports.readers (imports)"),
    ({"yikatong/interception/screening.py": "from yikatong.interception.service import gate\n",
      "yikatong/interception/service.py": ""},
     "yikatong.interception.screening (screening) imports yikatong.interception.service (verification)"),
    ({"yikatong/sharing/commands.py": "from yikatong.imports.commands import print_errors\n",
      "yikatong/imports/commands.py": ""},
     "yikatong.sharing.commands (views and commands) imports yikatong.imports.commands (views and commands)"),
])
def test_the_checker_flags_an_import_pointing_the_wrong_way(tmp_path, files, expected):
    assert violations(_tree(tmp_path, files)) == [expected]


def test_the_checker_lets_imports_point_down(tmp_path):
    root = _tree(tmp_path, {
        "yikatong/core/db.py": "",
        "yikatong/workflow/models.py": "from yikatong.core.db import Base\n",
        "yikatong/workflow/service.py": ("from yikatong.workflow import models\n"
                                         "from yikatong.interception import screening\n"),
        "yikatong/interception/screening.py": "from yikatong.workflow.models import Application\n",
        "yikatong/workflow/views.py": ("from yikatong.workflow.road_views import x\n"
                                       "from yikatong.web.deps import DbSession\n"),
        "yikatong/workflow/road_views.py": "",
        "yikatong/web/deps.py": "",
        "yikatong/web/app.py": "from yikatong.workflow import views, road_views\n",
    })
    assert violations(root) == []
