"""Translation of SBML math (libsbml abstract syntax trees) into vectorised float64 torch code.

:func:`compile_math` walks an ``ASTNode`` once and returns a Python closure
``f(env) -> Tensor``. ``env`` maps symbol ids to tensors that broadcast
against each other (one value per frame for species and time, 0-d tensors
otherwise), so one call evaluates an expression on every frame at once, and
the result is differentiable with respect to the concentrations (torch
autograd). Names resolved at compile time (constant parameters, local
parameters, compartment sizes) become 0-d constants; the others are looked up
in ``env`` at run time. Function definitions are inlined at their call sites.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from sysid.errors import SysidInputError
from sysid.sbml import _deps

Env = Mapping[str, torch.Tensor]
Compiled = Callable[[Env], torch.Tensor]
TIME_KEY = "<time>"
AVOGADRO = 6.02214179e23  # the value SBML Level 3 Version 1 fixes
DTYPE = torch.float64


@dataclass(frozen=True)
class FunctionDefinition:
    arguments: tuple[str, ...]
    body: object  # libsbml.ASTNode


@dataclass
class Scope:
    """How names resolve in one piece of math; ``where`` names it in error messages."""

    where: str
    constants: Mapping[str, float] = field(default_factory=dict)
    variables: frozenset[str] = frozenset()
    functions: Mapping[str, FunctionDefinition] = field(default_factory=dict)


def constant(value: float) -> Compiled:
    tensor = torch.tensor(float(value), dtype=DTYPE)
    return lambda env: tensor


def _unary_table(L) -> dict[int, Callable[[torch.Tensor], torch.Tensor]]:
    return {
        L.AST_FUNCTION_ABS: torch.abs, L.AST_FUNCTION_EXP: torch.exp, L.AST_FUNCTION_LN: torch.log,
        L.AST_FUNCTION_FLOOR: torch.floor, L.AST_FUNCTION_CEILING: torch.ceil,
        L.AST_FUNCTION_SIN: torch.sin, L.AST_FUNCTION_COS: torch.cos, L.AST_FUNCTION_TAN: torch.tan,
        L.AST_FUNCTION_SINH: torch.sinh, L.AST_FUNCTION_COSH: torch.cosh, L.AST_FUNCTION_TANH: torch.tanh,
        L.AST_FUNCTION_ARCSIN: torch.asin, L.AST_FUNCTION_ARCCOS: torch.acos, L.AST_FUNCTION_ARCTAN: torch.atan,
        L.AST_FUNCTION_ARCSINH: torch.asinh, L.AST_FUNCTION_ARCCOSH: torch.acosh,
        L.AST_FUNCTION_ARCTANH: torch.atanh,
        L.AST_FUNCTION_SEC: lambda x: 1.0 / torch.cos(x), L.AST_FUNCTION_CSC: lambda x: 1.0 / torch.sin(x),
        L.AST_FUNCTION_COT: lambda x: 1.0 / torch.tan(x), L.AST_FUNCTION_SECH: lambda x: 1.0 / torch.cosh(x),
        L.AST_FUNCTION_CSCH: lambda x: 1.0 / torch.sinh(x), L.AST_FUNCTION_COTH: lambda x: 1.0 / torch.tanh(x),
        L.AST_FUNCTION_ARCSEC: lambda x: torch.acos(1.0 / x), L.AST_FUNCTION_ARCCSC: lambda x: torch.asin(1.0 / x),
        L.AST_FUNCTION_ARCCOT: lambda x: torch.atan(1.0 / x),
        L.AST_FUNCTION_ARCSECH: lambda x: torch.acosh(1.0 / x),
        L.AST_FUNCTION_ARCCSCH: lambda x: torch.asinh(1.0 / x),
        L.AST_FUNCTION_ARCCOTH: lambda x: torch.atanh(1.0 / x),
        L.AST_FUNCTION_FACTORIAL: lambda x: torch.exp(torch.lgamma(x + 1.0)),
        L.AST_LOGICAL_NOT: lambda x: torch.logical_not(_as_bool(x)),
    }


def _binary_table(L) -> dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    return {
        L.AST_DIVIDE: torch.div, L.AST_POWER: torch.pow, L.AST_FUNCTION_POWER: torch.pow,
        L.AST_FUNCTION_REM: torch.fmod, L.AST_FUNCTION_QUOTIENT: lambda a, b: torch.trunc(a / b),
    }


def _nary_table(L) -> dict[int, tuple[Callable, float | None]]:
    """Reductions over the children and their value with no children (None: at least one needed)."""
    return {
        L.AST_PLUS: (torch.add, 0.0), L.AST_TIMES: (torch.mul, 1.0),
        L.AST_LOGICAL_AND: (lambda a, b: torch.logical_and(_as_bool(a), _as_bool(b)), 1.0),
        L.AST_LOGICAL_OR: (lambda a, b: torch.logical_or(_as_bool(a), _as_bool(b)), 0.0),
        L.AST_LOGICAL_XOR: (lambda a, b: torch.logical_xor(_as_bool(a), _as_bool(b)), 0.0),
        L.AST_FUNCTION_MIN: (torch.minimum, None), L.AST_FUNCTION_MAX: (torch.maximum, None),
    }


def _relational_table(L) -> dict[int, Callable]:
    return {
        L.AST_RELATIONAL_EQ: torch.eq, L.AST_RELATIONAL_NEQ: torch.ne, L.AST_RELATIONAL_LT: torch.lt,
        L.AST_RELATIONAL_GT: torch.gt, L.AST_RELATIONAL_LEQ: torch.le, L.AST_RELATIONAL_GEQ: torch.ge,
    }


def _as_bool(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.bool else x != 0


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(DTYPE) if x.dtype == torch.bool else x


def _reduce(op: Callable, parts: list[Compiled]) -> Compiled:
    def run(env: Env) -> torch.Tensor:
        value = parts[0](env)
        for part in parts[1:]:
            value = op(value, part(env))
        return value

    return run


class _Translator:
    def __init__(self, scope: Scope):
        self.L = _deps.libsbml()
        self.scope = scope
        self.unary, self.binary = _unary_table(self.L), _binary_table(self.L)
        self.nary, self.relational = _nary_table(self.L), _relational_table(self.L)

    def fail(self, what: str) -> SysidInputError:
        where = self.scope.where
        return SysidInputError(f"{where}: {what} is not supported in SBML math: rewrite the model without it")

    def children(self, node) -> list[Compiled]:
        return [self.visit(node.getChild(i)) for i in range(node.getNumChildren())]

    def visit(self, node) -> Compiled:
        L, kind = self.L, node.getType()
        if node.isNumber():
            return constant(node.getValue())
        if kind in (L.AST_NAME, L.AST_NAME_TIME, L.AST_NAME_AVOGADRO):
            return self.name(node, kind)
        if kind in (L.AST_CONSTANT_E, L.AST_CONSTANT_PI, L.AST_CONSTANT_TRUE, L.AST_CONSTANT_FALSE):
            values = {L.AST_CONSTANT_E: math.e, L.AST_CONSTANT_PI: math.pi, L.AST_CONSTANT_TRUE: 1.0}
            return constant(values.get(kind, 0.0))
        kids = self.children(node)
        if kind in self.unary and len(kids) == 1:
            f = self.unary[kind]
            return lambda env: f(_as_float(kids[0](env)))
        if kind in self.binary and len(kids) == 2:
            g = self.binary[kind]
            return lambda env: g(_as_float(kids[0](env)), _as_float(kids[1](env)))
        if kind in self.nary:
            op, empty = self.nary[kind]
            if not kids:
                if empty is None:
                    raise self.fail(f"{node.getName()} with no arguments")
                return constant(empty)
            return _reduce(op, kids)
        if kind in self.relational:
            return self.compare(self.relational[kind], kids)
        return self.special(node, kind, kids)

    def special(self, node, kind: int, kids: list[Compiled]) -> Compiled:
        L = self.L
        if kind == L.AST_MINUS:
            if len(kids) == 1:
                return lambda env: -kids[0](env)
            return lambda env: kids[0](env) - kids[1](env)
        if kind == L.AST_FUNCTION_LOG:  # two children: the base first
            if len(kids) == 1:
                return lambda env: torch.log10(kids[0](env))
            return lambda env: torch.log(kids[1](env)) / torch.log(kids[0](env))
        if kind == L.AST_FUNCTION_ROOT:  # two children: the degree first
            if len(kids) == 1:
                return lambda env: torch.sqrt(kids[0](env))
            return lambda env: torch.pow(kids[1](env), 1.0 / kids[0](env))
        if kind == L.AST_FUNCTION_PIECEWISE:
            return self.piecewise(kids)
        if kind == L.AST_FUNCTION:
            return self.call(node, kids)
        raise self.fail(f"'{node.getName() or L.formulaToL3String(node)}'")

    def name(self, node, kind: int) -> Compiled:
        L, scope = self.L, self.scope
        if kind == L.AST_NAME_TIME:
            return lambda env: env[TIME_KEY]
        if kind == L.AST_NAME_AVOGADRO:
            return constant(AVOGADRO)
        name = node.getName()
        if name in scope.constants:
            return constant(scope.constants[name])
        if name in scope.variables:
            return lambda env: env[name]
        raise SysidInputError(f"{scope.where}: symbol '{name}' is not a parameter, species or compartment of the "
                              "model (a reaction id used as a value?): rewrite the formula without it")

    @staticmethod
    def compare(op: Callable, kids: list[Compiled]) -> Compiled:
        def run(env: Env) -> torch.Tensor:
            values = [k(env) for k in kids]
            out = op(values[0], values[1])
            for a, b in zip(values[1:-1], values[2:], strict=True):
                out = torch.logical_and(out, op(a, b))
            return out

        return run

    @staticmethod
    def piecewise(kids: list[Compiled]) -> Compiled:
        pairs = [(kids[i], kids[i + 1]) for i in range(0, len(kids) - 1, 2)]
        otherwise = kids[-1] if len(kids) % 2 else constant(math.nan)

        def run(env: Env) -> torch.Tensor:
            out = _as_float(otherwise(env))
            for value, condition in reversed(pairs):
                out = torch.where(_as_bool(condition(env)), _as_float(value(env)), out)
            return out

        return run

    def call(self, node, kids: list[Compiled]) -> Compiled:
        name = node.getName()
        fd = self.scope.functions.get(name)
        if fd is None:
            raise self.fail(f"call of '{name}' (no function definition of that id)")
        if len(kids) != len(fd.arguments):
            raise SysidInputError(f"{self.scope.where}: function {name} takes {len(fd.arguments)} arguments but is "
                                  f"called with {len(kids)}: fix the call")
        inner = Scope(f"{self.scope.where} (function {name})", {}, frozenset(fd.arguments), self.scope.functions)
        body = _Translator(inner).visit(fd.body)
        names = fd.arguments

        def run(env: Env) -> torch.Tensor:
            return body({a: k(env) for a, k in zip(names, kids, strict=True)})

        return run


def compile_math(node, scope: Scope) -> Compiled:
    """A closure evaluating ``node`` on an environment of tensors."""
    if node is None:
        raise SysidInputError(f"{scope.where} has no math: give it a formula")
    return _Translator(scope).visit(node)


def function_definitions(model) -> dict[str, FunctionDefinition]:
    """The model's function definitions as (argument names, body)."""
    out = {}
    for fd in model.getListOfFunctionDefinitions():
        lam = fd.getMath()
        if lam is None or fd.getBody() is None:
            raise SysidInputError(f"function definition {fd.getId()} has no body: give it a lambda expression")
        args = tuple(lam.getChild(i).getName() for i in range(fd.getNumArguments()))
        out[fd.getId()] = FunctionDefinition(args, fd.getBody())
    return out
