"""An exact calculator: arithmetic on rationals, parsed with ``ast`` and never evaluated by Python.

The expression is parsed (``ast.parse(mode="eval")``) and walked over a whitelist: numbers,
``+ - * / // % **``, unary ``+``/``-``, parentheses, the constants ``pi``, ``e``, ``tau`` and the
functions in ``_FUNCTIONS``. Every value is a :class:`fractions.Fraction` with an ``exact`` flag:
``0.1 + 0.2`` is exactly ``3/10`` (number literals are read from their text, not as floats).
Irrational results (``sqrt(2)``, ``log(3)``, ``2 ** 0.5``) come from :mod:`decimal` at the
configured precision and are marked inexact; trigonometric functions use the float routines of
:mod:`math` (about 16 significant digits), also inexact. Abuse is bounded before work is done:
the length of the text, the nesting depth, the size of an exponent, and the digits of every
intermediate number (``9**9**9`` is refused, not computed).
"""

from __future__ import annotations

import ast
import decimal
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.config.tools import CalculatorLimits
from gateway.tools.base import ToolError, parse_arguments, schema_of
from gateway.tools.calculator_functions import FUNCTIONS

_LOG10_2 = math.log10(2)
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")


@dataclass(frozen=True, slots=True)
class Value:
    number: Fraction
    exact: bool = True


class CalculatorError(ToolError):
    def __init__(self, message: str, *, limit: bool = False) -> None:
        super().__init__("limit_exceeded" if limit else "execution_error", message)


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        description="An arithmetic expression, e.g. '(1/3 + 2**10) * sqrt(2)' or 'round(1234.5678, 2)'",
    )


class Calculator:
    """Evaluates an expression under the configured limits (one instance per process; no state)."""

    name = "calculator"
    description = (
        "Exact arithmetic. Supports numbers, + - * / // % ** and parentheses, the constants pi, e, "
        "tau, and the functions sqrt, abs, round, min, max, floor, ceil, factorial, gcd, lcm, exp, "
        "log (natural, or log(x, base)), log10, log2, sin, cos, tan, asin, acos, atan, atan2, "
        "degrees, radians. Results are exact fractions unless a function is irrational."
    )

    def __init__(self, limits: CalculatorLimits | None = None) -> None:
        self.limits = limits or CalculatorLimits()
        self.parameters = schema_of(_Arguments)

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        expression = parse_arguments(_Arguments, arguments).expression
        value = self.evaluate(expression)
        return {"expression": expression, **describe(value, precision=self.limits.precision)}

    def evaluate(self, expression: str) -> Value:
        if len(expression) > self.limits.max_expression_chars:
            raise CalculatorError(
                f"the expression is longer than {self.limits.max_expression_chars} characters", limit=True
            )
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise ToolError("invalid_arguments", f"not a valid expression: {exc.msg}") from None
        except ValueError:  # a NUL byte
            raise ToolError("invalid_arguments", "not a valid expression") from None
        except (RecursionError, MemoryError):
            raise CalculatorError("the expression is nested too deeply", limit=True) from None
        _check_depth(tree.body, self.limits.max_depth)
        return _Evaluator(self.limits, expression).eval(tree.body)


def _check_depth(root: ast.AST, limit: int) -> None:
    """Nesting depth, where a chain ``a + b - c`` counts once (it is evaluated as a loop)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise CalculatorError(f"the expression is nested deeper than {limit} levels", limit=True)
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Pow):
            stack.extend(((node.left, depth), (node.right, depth + 1)))
        else:
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def describe(value: Value, *, precision: int) -> dict[str, Any]:
    """The result as the model reads it: ``result`` (a decimal string: exact when the fraction has
    a finite decimal expansion, else rounded to ``precision`` digits), ``exact`` and ``fraction``."""
    number = value.number
    digits = precision if value.exact else max(10, precision - 10)  # inexact: drop the guard digits
    out: dict[str, Any] = {"result": _decimal_text(number, digits, exact=value.exact), "exact": value.exact}
    if value.exact and number.denominator != 1:
        out["fraction"] = f"{number.numerator}/{number.denominator}"
    return out


def _decimal_text(number: Fraction, precision: int, *, exact: bool) -> str:
    if number.denominator == 1 and (exact or len(str(abs(number.numerator))) <= precision):
        return str(number.numerator)
    den = number.denominator
    twos = fives = 0  # a power of ten times 2**a 5**b: the expansion is finite
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    context = decimal.Context(prec=precision)
    if den == 1 and exact:  # a finite decimal expansion: print it exactly
        places = max(twos, fives)
        scaled = number.numerator * 10**places // number.denominator
        context = decimal.Context(prec=max(precision, len(str(abs(scaled))) + 1))
        text = format(context.create_decimal(scaled).scaleb(-places, context), "f")
    else:
        text = format(
            context.divide(decimal.Decimal(number.numerator), decimal.Decimal(number.denominator)), "f"
        )
    return text.rstrip("0").rstrip(".") if "." in text else text


class _Evaluator:
    def __init__(self, limits: CalculatorLimits, source: str) -> None:
        self.limits = limits
        self.source = source
        self.context = decimal.Context(prec=limits.precision, Emax=limits.max_digits, Emin=-limits.max_digits)

    def eval(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            return Value(self._literal(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.eval(node.operand)
            return operand if isinstance(node.op, ast.UAdd) else Value(-operand.number, operand.exact)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return self._power(self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return Value(self._inexact(_CONSTANTS[node.id](self.context)), exact=False)
            raise ToolError("invalid_arguments", f"unknown name {node.id!r}")
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BoolOp | ast.Compare):
            raise ToolError("invalid_arguments", "only arithmetic operators are allowed")
        raise ToolError("invalid_arguments", f"{type(node).__name__} is not allowed in an expression")

    def _literal(self, node: ast.Constant) -> Fraction:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolError("invalid_arguments", "only numbers are allowed")
        if isinstance(value, int):
            self._check_digits(Fraction(value))
            return Fraction(value)
        text = (ast.get_source_segment(self.source.strip(), node) or repr(value)).replace("_", "")
        exponent = _EXPONENT.search(text)
        if exponent is not None and abs(int(exponent.group(1))) > self.limits.max_digits:
            raise CalculatorError(
                f"the number {text[:40]} has more than {self.limits.max_digits} digits", limit=True
            )
        try:
            return self._check_digits(Fraction(text))
        except ValueError:
            return self._check_digits(Fraction(value))

    def _binop(self, node: ast.BinOp) -> Value:
        chain: list[tuple[ast.operator, ast.expr]] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp) and not isinstance(left.op, ast.Pow):  # a + b - c: a loop
            chain.append((left.op, left.right))
            left = left.left
        value = self.eval(left)
        for op, right in reversed(chain):
            value = self._apply(op, value, self.eval(right))
        return value

    def _apply(self, op: ast.operator, left: Value, right: Value) -> Value:
        if isinstance(op, ast.BitXor):
            raise ToolError("invalid_arguments", "'^' is not a power here; write ** (2**3)")
        if type(op) not in _BINARY:
            raise ToolError("invalid_arguments", "only arithmetic operators are allowed")
        if isinstance(op, ast.Div | ast.FloorDiv | ast.Mod) and right.number == 0:
            raise CalculatorError("division by zero")
        number = _BINARY[type(op)](left.number, right.number)
        return self._value(Fraction(number), left.exact and right.exact)

    def _power(self, base: Value, exponent: Value) -> Value:
        b, x = base.number, exponent.number
        if x.denominator == 1 and exponent.exact:
            power = x.numerator
            if abs(power) > self.limits.max_exponent:
                raise CalculatorError(
                    f"the exponent {power} is larger than the limit {self.limits.max_exponent}", limit=True
                )
            if b == 0 and power < 0:
                raise CalculatorError("division by zero (0 raised to a negative power)")
            size = abs(power) * math.log10(max(abs(b.numerator), b.denominator, 1))
            if size > self.limits.max_digits and base.exact:
                raise CalculatorError(
                    f"the result would have more than {self.limits.max_digits} digits", limit=True
                )
            if base.exact:
                return self._value(b**power, True)
        if b < 0 and x.denominator != 1:
            raise CalculatorError("a negative number to a fractional power is not a real number")
        if b == 0:
            return Value(Fraction(0), base.exact and exponent.exact) if x > 0 else self._zero_power(x)
        return self._decimal(lambda c: c.power(self._dec(b), self._dec(x)))

    def _zero_power(self, x: Fraction) -> Value:
        if x == 0:
            return Value(Fraction(1))
        raise CalculatorError("division by zero (0 raised to a negative power)")

    def _call(self, node: ast.Call) -> Value:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ToolError("invalid_arguments", f"unknown function {ast.unparse(node.func)[:40]!r}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError("invalid_arguments", "functions take positional arguments only")
        name = node.func.id
        low, high, fn = FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            raise ToolError(
                "invalid_arguments",
                f"{name}() takes {low}"
                + (f" to {high}" if high > low else "")
                + " argument"
                + ("s" if high != 1 else ""),
            )
        args = [self.eval(arg) for arg in node.args]
        try:
            return fn(self, args)
        except (ValueError, ZeroDivisionError, decimal.InvalidOperation, decimal.DivisionByZero) as exc:
            raise CalculatorError(f"{name}(): {_reason(exc)}") from None
        except (OverflowError, decimal.Overflow):
            raise CalculatorError(f"{name}(): the result is too large", limit=True) from None

    # -- helpers the functions use ------------------------------------------------------------

    def _dec(self, number: Fraction) -> decimal.Decimal:
        return self.context.divide(decimal.Decimal(number.numerator), decimal.Decimal(number.denominator))

    def _inexact(self, number: decimal.Decimal) -> Fraction:
        return Fraction(number.normalize(self.context))

    def _decimal(self, fn: Callable[[decimal.Context], decimal.Decimal]) -> Value:
        try:
            result = fn(self.context)
        except decimal.Overflow:
            raise CalculatorError("the result is too large", limit=True) from None
        except (decimal.InvalidOperation, decimal.DivisionByZero) as exc:
            raise CalculatorError(_reason(exc)) from None
        return self._value(Fraction(result), False)

    def _float(self, fn: Callable[..., float], *args: Fraction) -> Value:
        """A :mod:`math` function, kept to the 15 significant digits a float carries (so
        ``sin(pi)`` is 0 and ``sin(pi/6)`` is 0.5, not float noise)."""
        result = fn(*(float(a) for a in args))
        if not math.isfinite(result):
            raise OverflowError
        scale = max([1.0, *(abs(float(a)) for a in args)])
        if abs(result) < 1e-15 * scale:
            result = 0.0
        return self._value(Fraction(f"{result:.15g}"), False)

    def _value(self, number: Fraction, exact: bool) -> Value:
        if not exact and number.denominator != 1:
            number = self._inexact(self._dec(number))
        return Value(self._check_digits(number), exact)

    def _check_digits(self, number: Fraction) -> Fraction:
        bits = max(number.numerator.bit_length(), number.denominator.bit_length())
        if bits * _LOG10_2 > self.limits.max_digits:
            raise CalculatorError(f"a number has more than {self.limits.max_digits} digits", limit=True)
        return number


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError | decimal.DivisionByZero):
        return "division by zero"
    if isinstance(exc, decimal.InvalidOperation):
        return "math domain error"
    return str(exc) or type(exc).__name__


_BINARY: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction | int]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


def _pi(context: decimal.Context) -> decimal.Decimal:
    """π to the context's precision (the series of the :mod:`decimal` documentation's recipe)."""
    local = decimal.Context(prec=context.prec + 4)
    three = decimal.Decimal(3)
    lasts, t, s, n, na, d, da = decimal.Decimal(0), three, three, 1, 0, 0, 24
    while s != lasts:
        lasts = s
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        t = local.divide(local.multiply(t, n), d)
        s = local.add(s, t)
    return context.plus(s)


_CONSTANTS: dict[str, Callable[[decimal.Context], decimal.Decimal]] = {
    "pi": _pi,
    "tau": lambda c: c.multiply(2, _pi(c)),
    "e": lambda c: c.exp(1),
}
