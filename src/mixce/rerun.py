"""Which code a rule runs, and a fingerprint of that code that ignores comments and style.

rules/common.smk passes :func:`code_fingerprint` of a rule's script as its ``code`` param, so a
rule reruns when the code it runs changes in content, and only then. The code is read
statically (:mod:`ast`, nothing imported): the script, and in every ``mixce`` module it reaches
the statements that run at import plus the definitions reachable code uses, with the
statements that change those objects in place (a registry brings every registered function).
When in doubt it takes more, never less. The one assumption: a top-level ``NAME = ...`` has
no side effect beyond binding NAME. Each module's statements are hashed without
docstrings, comments or formatting. The rules in full: docs/ARCHITECTURE.md, "How a rule's
code is fingerprinted". ``python -m mixce.rerun rules/scripts/<script>.py`` prints what a
script's fingerprint covers.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "mixce"
SRC = Path(__file__).resolve().parents[1]
#: Length of each module's hex digest in a fingerprint (64 bits).
DIGEST_CHARS = 16
#: Methods that change a list, dict or set in place: ``X.<method>(...)`` writes to X.
MUTATING_METHODS = frozenset(
    "append extend insert update setdefault add pop popitem remove discard clear sort reverse"
    " __setitem__ __delitem__".split()
)

# A need: ("module", M): M is imported (its import-time statements run);
# ("name", M, n): name n of module M is used; ("all", M): every statement of M.
Need = tuple[str, ...]


def _is_string_statement(node: object) -> bool:
    """A docstring or any other string-only expression statement (no effect when run)."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def canonical_dump(node: ast.AST | list | object) -> str:
    """The syntax tree as text: node types and fields, without docstrings, string-only
    statements, positions, or empty (``None``, ``[]``) fields.

    Comments and formatting are not in the tree, so two sources that differ only in those
    (or in docstrings) give the same text.
    """
    if isinstance(node, ast.AST):
        parts = []
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or (isinstance(value, list) and not value):
                continue
            parts.append(f"{name}={canonical_dump(value)}")
        return f"{type(node).__name__}({', '.join(parts)})"
    if isinstance(node, list):
        kept = [canonical_dump(item) for item in node if not _is_string_statement(item)]
        return f"[{', '.join(kept)}]"
    return repr(node)


@dataclass
class Statement:
    """One top-level statement of a module (one name of a top-level import statement).

    ``kind``: ``import`` (one imported name), ``def`` (function or class), ``assign``
    (``NAME = ...``), ``mutate`` (``X[k] = ...``, ``X.a = ...``, ``X.update(...)``) or ``run``
    (any other statement: calls, ``if``/``try``/``for`` blocks).
    """

    kind: str
    label: str
    dump: str
    defines: frozenset[str]
    refs: frozenset[str]  # names read anywhere inside (function bodies included)
    mutates: frozenset[str]  # names whose object it changes in place
    use_needs: tuple[Need, ...]  # what running or using it imports
    import_needs: tuple[Need, ...] = ()  # import: the module it runs at import time
    decorator_refs: frozenset[str] = frozenset()  # def: names its decorators read


@dataclass
class Module:
    """A parsed module: its statements, which define each name, which write to it."""

    name: str
    path: Path
    statements: list[Statement]
    defs: dict[str, list[int]] = field(default_factory=dict)
    writers: dict[str, list[int]] = field(default_factory=dict)
    roots: list[int] = field(default_factory=list)


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _resolve(module: str | None, level: int, current: str, is_package: bool) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``current``."""
    if level == 0:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _alias_needs(
    node: ast.Import | ast.ImportFrom, current: str, is_package: bool
) -> Iterator[tuple[ast.alias, str, list[Need], list[Need]]]:
    """Per imported name: (alias, bound name, needs when the name is used, module run)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if _in_package(alias.name):  # import mixce.x: all of mixce.x (attribute use)
                yield alias, bound, [("all", alias.name)], [("module", alias.name)]
            else:
                yield alias, bound, [], []
        return
    target = _resolve(node.module, node.level, current, is_package)
    for alias in node.names:
        bound = alias.asname or alias.name
        if not _in_package(target):
            yield alias, bound, [], []
        elif alias.name == "*":
            yield alias, bound, [("all", target)], [("module", target)]
        else:
            yield alias, bound, [("name", target, alias.name)], [("module", target)]


def _base_name(node: ast.AST) -> str | None:
    """X of X.a.b[k] (None when the chain does not start at a name)."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Reader(ast.NodeVisitor):
    """Names read, objects changed in place and imports anywhere inside one statement."""

    def __init__(self, current: str, is_package: bool) -> None:
        self.current, self.is_package = current, is_package
        self.refs: set[str] = set()
        self.mutates: set[str] = set()
        self.needs: list[Need] = []
        self.globals: set[str] = set()

    def _mutated(self, node: ast.AST) -> None:
        name = _base_name(node)
        if name is not None:
            self.mutates.add(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load | ast.Del):
            self.refs.add(node.id)
        elif node.id in self.globals:  # `global X` then X = ... inside a function
            self.mutates.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Attribute(self, node: ast.Attribute | ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self._mutated(node)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in MUTATING_METHODS:
            self._mutated(node.func.value)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for _alias, _bound, use, run in _alias_needs(node, self.current, self.is_package):
            self.needs.extend(run + use)

    visit_ImportFrom = visit_Import


def _bound_names(node: ast.AST) -> set[str]:
    """Names a top-level statement binds in the module namespace."""
    names: set[str] = set()

    def visit(item: ast.AST) -> None:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(item.name)
            return  # what it binds inside is local to it
        if isinstance(item, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp):
            return
        if isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
            names.add(item.id)
        elif isinstance(item, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in item.names)
        for child in ast.iter_child_nodes(item):
            visit(child)

    visit(node)
    return names


def _is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (never runs on import)."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and [getattr(c, "value", None) for c in test.comparators] == ["__main__"]
    )


def _kind(node: ast.stmt) -> str:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return "def"
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Attribute | ast.Subscript) for x in targets for t in ast.walk(x)):
            return "mutate"
        return "assign"
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr in MUTATING_METHODS
    ):
        return "mutate"
    return "run"


def _statements(tree: ast.Module, current: str, is_package: bool) -> list[Statement]:
    out: list[Statement] = []
    for node in tree.body:
        if _is_string_statement(node) or _is_main_block(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            # one statement per imported name: using one name does not bring the others
            for alias, bound, use, run in _alias_needs(node, current, is_package):
                if isinstance(node, ast.Import):
                    single: ast.stmt = ast.Import(names=[alias])
                    label = f"import {alias.name}"
                else:
                    single = ast.ImportFrom(module=node.module, names=[alias], level=node.level)
                    label = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                dump, no = canonical_dump(single), frozenset()
                defines = frozenset({bound})
                out.append(
                    Statement("import", label, dump, defines, no, no, tuple(use), tuple(run))
                )
            continue
        reader = _Reader(current, is_package)
        reader.visit(node)
        defines = _bound_names(node)
        kind = _kind(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            label = f"def {node.name}"
        elif isinstance(node, ast.ClassDef):
            label = f"class {node.name}"
        else:
            label = f"{', '.join(sorted(defines)) or kind} (line {node.lineno})"
        decorators = getattr(node, "decorator_list", [])
        out.append(
            Statement(
                kind=kind,
                label=label,
                dump=canonical_dump(node),
                defines=frozenset(defines),
                refs=frozenset(reader.refs),
                mutates=frozenset(reader.mutates),
                use_needs=tuple(reader.needs),
                decorator_refs=frozenset(
                    n.id for d in decorators for n in ast.walk(d) if isinstance(n, ast.Name)
                ),
            )
        )
    return out


def parse_module(name: str, path: Path, is_package: bool = False) -> Module:
    """Read the top-level statements of module ``name`` from ``path``; link each name to its
    definitions and writers, and find the statements that run at import whatever is used."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    statements = _statements(tree, name, is_package)
    module = Module(name=name, path=path, statements=statements)
    for i, stmt in enumerate(statements):
        for bound in stmt.defines:
            module.defs.setdefault(bound, []).append(i)
    # Objects this module creates (a name bound only by imports is another module's object).
    owned = {
        name
        for name, where in module.defs.items()
        if any(statements[i].kind != "import" for i in where)
    }
    # Names imported from other package modules: a decorator among them may register the
    # function there (a registry this analysis does not follow across modules).
    from_package = {
        bound
        for stmt in statements
        if stmt.kind == "import" and stmt.use_needs
        for bound in stmt.defines
    }
    callables = {
        name
        for name, where in module.defs.items()
        if any(statements[i].kind == "def" for i in where)
    }
    # Writers, to a fixed point: a statement writes to X when it changes X in place or uses
    # a local function or class that does (as a decorator, a call at import, a call inside).
    writes = [set(stmt.mutates) & owned for stmt in statements]
    changed = True
    while changed:
        changed = False
        for i, stmt in enumerate(statements):
            for ref in stmt.refs & callables:
                for j in module.defs[ref]:
                    if statements[j].kind == "def" and not writes[j] <= writes[i]:
                        writes[i] |= writes[j]
                        changed = True
    for i, (stmt, names) in enumerate(zip(statements, writes, strict=True)):
        for written in names:
            if i not in module.defs.get(written, []):
                module.writers.setdefault(written, []).append(i)
        if stmt.kind == "import":
            root = True  # runs the imported module; the name itself is used or not
        elif stmt.kind == "mutate":
            # changes only this module's objects: comes with them; another's: always runs
            root = not (stmt.mutates and stmt.mutates <= owned)
        elif stmt.kind == "def":
            root = bool(stmt.decorator_refs & from_package)
        else:
            root = stmt.kind == "run"
        if root:
            module.roots.append(i)
    return module


class CodeIndex:
    """Parsed modules of the package under ``src`` (each read once), and what scripts use."""

    def __init__(self, src: Path = SRC) -> None:
        self.src = Path(src)
        self._modules: dict[str, Module] = {}

    def find(self, name: str) -> tuple[Path, bool] | None:
        """(file, is_package) of package module ``name``; None if there is none."""
        base = self.src.joinpath(*name.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        return None

    def module(self, name: str) -> Module:
        if name not in self._modules:
            found = self.find(name)
            if found is None:
                raise ModuleNotFoundError(
                    f"module {name} is imported by a rule's code but has no file under "
                    f"{self.src / PACKAGE} (neither {name.replace('.', '/')}.py nor a package)"
                )
            self._modules[name] = parse_module(name, *found)
        return self._modules[name]

    def closure(self, script: Path) -> dict[str, tuple[Module, list[int]]]:
        """What a script runs: {module name: (module, indices of its included statements)},
        the script first (under its path), then the package modules in name order."""
        script = Path(script)
        main = parse_module(script.stem, script)
        included: dict[str, set[int]] = {}
        used: set[tuple[str, int]] = set()
        done: set[Need] = set()
        queue: list[Need] = []

        def use(mod: Module, i: int) -> None:
            if (mod.name, i) in used:
                return
            used.add((mod.name, i))
            included[mod.name].add(i)
            stmt = mod.statements[i]
            queue.extend(stmt.use_needs)
            queue.extend(("name", mod.name, ref) for ref in sorted(stmt.refs & set(mod.defs)))

        self._modules[main.name] = main
        try:
            included[main.name] = set()
            for i, stmt in enumerate(main.statements):  # a script runs whole
                queue.extend(stmt.import_needs)
                use(main, i)
            while queue:
                need = queue.pop()
                if need in done:
                    continue
                done.add(need)
                kind, name = need[0], need[1]
                if kind == "module":
                    parts = name.split(".")
                    queue.extend(("module", ".".join(parts[:k])) for k in range(1, len(parts)))
                    mod = self.module(name)
                    included.setdefault(name, set())
                    for i in mod.roots:
                        included[name].add(i)
                        queue.extend(mod.statements[i].import_needs)
                        if mod.statements[i].kind != "import":
                            use(mod, i)
                    continue
                queue.append(("module", name))
                mod = self.module(name)
                included.setdefault(name, set())
                if kind == "all":
                    for i in range(len(mod.statements)):
                        use(mod, i)
                    continue
                attr = need[2]
                if attr in mod.defs:
                    for i in mod.defs[attr] + mod.writers.get(attr, []):
                        use(mod, i)
                elif self.find(f"{name}.{attr}") is not None:
                    queue.append(("all", f"{name}.{attr}"))  # a submodule, used by attribute
                else:
                    queue.append(("all", name))  # not found statically: all of it
        finally:
            del self._modules[main.name]
        return {str(script): (main, sorted(included.pop(main.name)))} | {
            name: (self.module(name), sorted(included[name])) for name in sorted(included)
        }

    def fingerprint(self, script: Path, label: str | None = None) -> dict[str, str]:
        """{module: digest of its included statements} of what ``script`` runs; the script's
        own entry is keyed ``label`` (default: its path as given)."""
        out = {}
        for key, (mod, indices) in self.closure(script).items():
            text = "\n".join(mod.statements[i].dump for i in indices)
            key = label if label is not None and key == str(script) else key
            out[key] = hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]
        return out


def code_fingerprint(script: Path, src: Path = SRC, label: str | None = None) -> dict[str, str]:
    """Fingerprint of the code a rule script runs (see the module docstring): the script and
    each ``mixce`` module it reaches, to a digest of the statements that count."""
    return CodeIndex(src).fingerprint(script, label)


def describe(script: Path, src: Path = SRC) -> Iterator[str]:
    """Lines naming, per module, the statements a script's fingerprint covers."""
    for key, (mod, indices) in CodeIndex(src).closure(script).items():
        yield f"{key}:"
        for i in indices:
            yield f"    {mod.statements[i].label}"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixce.rerun",
        description="Print, per module, the code a rule script's fingerprint covers.",
    )
    parser.add_argument("scripts", nargs="+", type=Path, help="rule scripts (rules/scripts/*.py)")
    parser.add_argument("--src", type=Path, default=SRC, help="directory holding mixce/")
    args = parser.parse_args(None if argv is None else list(argv))
    for script in args.scripts:
        for line in describe(script, args.src):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
