"""The kernel (service/) imports no feature package except through its feature list (service/features.py),
which names them as strings. A feature that needs the kernel to know it registers there instead."""

import ast
import re
from pathlib import Path

from service import features

ROOT = Path(__file__).resolve().parent.parent
FEATURE_PACKAGES = ("signatures", "newsletter", "portal", "advocacy")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):  # also imports inside functions: lazy is still a dependency
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_the_kernel_imports_no_feature_package():
    offenders = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        if path == ROOT / "service" / "features.py" or "migrations" in path.parts:
            continue
        for line, module in _imports(path):
            if module.split(".")[0] in FEATURE_PACKAGES:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == [], "register these in service/features.py instead:\n" + "\n".join(offenders)


def test_every_entry_of_the_feature_list_imports():
    refs = [
        ref
        for f in features.FEATURES
        for ref in (*f.routers, *f.pages, *f.tasks, *f.models, *f.middleware, *f.click_dimensions, *f.share_gates)
    ]
    refs += [f.demo for f in features.FEATURES if f.demo]
    assert len(refs) >= 15
    for ref in refs:
        assert features.load(ref) is not None, ref


# Lower-case HTML tags only: the add-in manifest is XML with PascalCase tags.
HTML_LITERAL = re.compile(r"<(!DOCTYPE|html|head|body|p|h1|h2|div|table|form|ul)[ >]")


def test_no_route_module_builds_html_by_hand():
    """Pages and HTML answers are Jinja templates (templates/pages/, one page Environment), never strings."""
    offenders = []
    for package in ("service", *FEATURE_PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if "APIRouter(" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and HTML_LITERAL.search(node.value):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value[:60]!r}")
    assert offenders == [], "render these through service.pages instead:\n" + "\n".join(offenders)
