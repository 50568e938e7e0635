"""What the checks can emit, read from their source with `ast`: every code literal passed to Finding(code=...)
and the severities written beside it. Run nothing: a code that only appears at run time cannot be catalogued."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

CHECKS = Path(__file__).resolve().parent.parent / "envdoctor" / "checks"


@dataclass
class Emitted:
    severities: set[str] = field(default_factory=set)
    places: list[str] = field(default_factory=list)


def _literals(node: ast.expr, where: str) -> list[str]:
    """The string constants a code expression can take: a literal, or `"a" if cond else "b"` of literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body, where) + _literals(node.orelse, where)
    raise AssertionError(f"{where}: Finding's code is not a literal ({ast.unparse(node)})")


def _severities(node: ast.expr) -> set[str]:
    """`Severity.ERROR`, or a conditional of those: their values ("error")."""
    return {
        n.attr.lower()
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "Severity"
    }


def _pairs(code: ast.expr, severity: ast.expr, where: str) -> list[tuple[str, set[str]]]:
    """Each code with its severities. `code="a" if c else "b", severity=X if c else Y` (the same condition) pairs
    a with X and b with Y; otherwise every code may carry every severity written."""
    same = (
        isinstance(code, ast.IfExp)
        and isinstance(severity, ast.IfExp)
        and ast.dump(code.test) == ast.dump(severity.test)
    )
    if same:
        assert isinstance(code, ast.IfExp) and isinstance(severity, ast.IfExp)
        return _pairs(code.body, severity.body, where) + _pairs(code.orelse, severity.orelse, where)
    return [(literal, _severities(severity)) for literal in _literals(code, where)]


def _finding_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Finding"
    ]


def emitted_codes(folder: Path = CHECKS) -> dict[str, Emitted]:
    """code -> the severities its Finding calls write and where they are. Raises on a positional or computed code."""
    out: dict[str, Emitted] = {}
    for path in sorted(folder.glob("*.py")):
        for call in _finding_calls(path):
            where = f"{path.name}:{call.lineno}"
            assert not call.args, f"{where}: Finding takes keyword arguments (code=..., severity=...)"
            kwargs = {k.arg: k.value for k in call.keywords}
            assert "code" in kwargs and "severity" in kwargs, f"{where}: Finding without code= or severity="
            for code, severities in _pairs(kwargs["code"], kwargs["severity"], where):
                assert severities, f"{where}: severity is not written as Severity.X"
                entry = out.setdefault(code, Emitted())
                entry.severities |= severities
                entry.places.append(where)
    return out


if __name__ == "__main__":
    for code, e in sorted(emitted_codes().items()):
        print(code, sorted(e.severities), " ".join(e.places))
