"""The Terraform root module in `infra/`, parsed with python-hcl2 into plain Python data.

There is no terraform binary in CI, so tests read the configuration as data. Blocks become
dicts, lists of blocks become lists, and every expression that is not a literal stays as its
source text wrapped in `${...}`. `Module.resolve` evaluates the few expression shapes the
tests need (literals, `local.x`, `var.x` defaults, `tostring(...)`, string templates of
those) and leaves anything else untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_WHOLE_EXPR = re.compile(r"^\$\{(?P<expr>[^{}]*)\}$")
_INTERPOLATION = re.compile(r"\$\{(?P<expr>[^{}]*)\}")
_TOSTRING = re.compile(r"^tostring\((?P<inner>[^()]*)\)$")
_REF = re.compile(r"^(?P<kind>local|var)\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)$")


def parse_file(path: Path) -> dict[str, Any]:
    """One .tf or .tfvars file as python-hcl2 data (quotes stripped, no block markers)."""
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


@dataclass
class Module:
    """Every top-level block of a root module, keyed the way Terraform addresses them."""

    directory: Path
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        try:
            return self.resources[type_][name]
        except KeyError:
            raise KeyError(f"no resource {type_}.{name} in {self.directory}") from None

    def data_source(self, type_: str, name: str) -> dict[str, Any]:
        try:
            return self.data[type_][name]
        except KeyError:
            raise KeyError(f"no data source data.{type_}.{name} in {self.directory}") from None

    def resolve(self, value: Any) -> Any:
        """Evaluate literals, local/var references, tostring() and templates made of them."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if not isinstance(value, str):
            return value
        whole = _WHOLE_EXPR.match(value)
        if whole:
            resolved = self._resolve_expression(whole.group("expr").strip())
            return value if resolved is _UNRESOLVED else resolved

        def substitute(match: re.Match[str]) -> str:
            resolved = self._resolve_expression(match.group("expr").strip())
            if resolved is _UNRESOLVED or isinstance(resolved, (dict, list)):
                return match.group(0)
            return str(resolved)

        return _INTERPOLATION.sub(substitute, value)

    def _resolve_expression(self, expr: str) -> Any:
        tostring = _TOSTRING.match(expr)
        if tostring:
            inner = self._resolve_expression(tostring.group("inner").strip())
            if inner is _UNRESOLVED or isinstance(inner, (dict, list)):
                return _UNRESOLVED
            return str(inner).lower() if isinstance(inner, bool) else str(inner)
        ref = _REF.match(expr)
        if not ref:
            return _UNRESOLVED
        if ref.group("kind") == "local":
            if ref.group("name") not in self.locals:
                return _UNRESOLVED
            return self.resolve(self.locals[ref.group("name")])
        variable = self.variables.get(ref.group("name"), {})
        return self.resolve(variable["default"]) if "default" in variable else _UNRESOLVED


class _Unresolved:
    def __repr__(self) -> str:
        return "<unresolved>"


_UNRESOLVED: Any = _Unresolved()


def load_module(directory: Path = INFRA_DIR) -> Module:
    """Parse every `*.tf` file of a root module (not its subdirectories)."""
    module = Module(directory=directory)
    paths = sorted(directory.glob("*.tf"))
    if not paths:
        raise FileNotFoundError(f"no .tf files in {directory}")
    for path in paths:
        parsed = parse_file(path)
        module.files[path.name] = parsed
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        if name in target.setdefault(type_, {}):
                            raise ValueError(f"{kind} {type_}.{name} declared twice")
                        target[type_][name] = {**body, "__file__": path.name}
        for block in parsed.get("variable", []):
            module.variables.update(block)
        for block in parsed.get("output", []):
            module.outputs.update(block)
        for block in parsed.get("locals", []):
            duplicated = module.locals.keys() & block.keys()
            if duplicated:
                raise ValueError(f"locals declared twice: {sorted(duplicated)}")
            module.locals.update(block)
        module.terraform.extend(parsed.get("terraform", []))
    return module
