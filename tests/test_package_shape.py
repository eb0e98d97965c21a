"""The package keeps the shape docs/architecture.md describes: layers that import only downward,
small modules, a docstring on every public definition, and errors raised on purpose from the
project's own family (so ``except ByzerAgentsError`` catches each of them)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "byzer_agents"
MAX_LINES = 500
BUILTIN_RAISES = {"ValueError", "TypeError", "RuntimeError"}
# The layers below the loop: none of them may import it (docs/architecture.md, "Layers"). The
# server sits above the facade (it serves an LLM's deployments) but never reaches into the loop.
BELOW_THE_LOOP = ("core", "llm_runtime", "serve", "tools", "prompts", "traces")
BELOW_THE_FACADE = ("core", "llm_runtime", "tools", "prompts", "traces")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in node.decorator_list
    )


def _public_definitions(tree: ast.Module) -> Iterator[ast.AST]:
    """Module-level functions and classes without a leading underscore, and the public methods
    of public classes (dunders aside)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name.startswith("_"):
                continue
            if isinstance(node, ast.ClassDef):
                yield node
                yield from (
                    member
                    for member in node.body
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not member.name.startswith("_")
                    and not _is_overload(member)
                )
            elif not _is_overload(node):
                yield node


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_no_module_is_over_the_line_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines; split it (at most {MAX_LINES})"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_every_public_definition_says_what_it_is(path: Path) -> None:
    tree = _tree(path)
    assert ast.get_docstring(tree), f"{_name(path)} has no module docstring"
    missing = [
        f"{getattr(node, 'name', '?')} (line {getattr(node, 'lineno', '?')})"
        for node in _public_definitions(tree)
        if not ast.get_docstring(node)  # type: ignore[arg-type]
    ]
    assert not missing, f"{_name(path)}: public definitions without a docstring: {missing}"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_errors_raised_on_purpose_belong_to_the_family(path: Path) -> None:
    bare = [
        node.lineno
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id in BUILTIN_RAISES
    ]
    assert not bare, (
        f"{_name(path)} raises a bare builtin error at lines {bare}; raise a "
        "byzer_agents.exceptions class (ConfigurationError, ConfigurationTypeError, UsageError)"
    )


@pytest.mark.parametrize("layer", BELOW_THE_LOOP)
def test_layers_below_the_loop_never_import_it(layer: str) -> None:
    upward = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            upward += [
                f"{_name(path)}:{node.lineno} {name}"
                for name in names
                if name == "byzer_agents.chat"
                or name.startswith("byzer_agents.chat.")
                or (name == "byzer_agents.llm" and layer in BELOW_THE_FACADE)
            ]
    assert not upward, f"{layer}/ imports the loop or the facade above it: {upward}"
