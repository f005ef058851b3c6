"""The calculator's functions: ``name -> (min args, max args, implementation)``.

Exact where the mathematics allows it (``abs``, ``round``, ``min``, ``floor``, ``gcd``, ``sqrt`` of a
perfect square, ``factorial``); :mod:`decimal` at the evaluator's precision for ``sqrt``, ``exp``
and logarithms; :mod:`math` floats (marked inexact) for trigonometry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.tools.calculator import Value, _Evaluator

Function = Callable[["_Evaluator", Sequence["Value"]], "Value"]
MAX_FACTORIAL = 1000


def _exact(ev: _Evaluator, number: Fraction | int, *args: Value) -> Value:
    return ev._value(Fraction(number), all(a.exact for a in args))


def _integer(value: Value, name: str) -> int:
    if value.number.denominator != 1:
        raise ValueError(f"{name} needs whole numbers")
    return value.number.numerator


def _sqrt(ev: _Evaluator, args: Sequence[Value]) -> Value:
    (x,) = args
    if x.number < 0:
        raise ValueError("the square root of a negative number is not a real number")
    num, den = x.number.numerator, x.number.denominator
    root_num, root_den = math.isqrt(num), math.isqrt(den)
    if x.exact and root_num * root_num == num and root_den * root_den == den:
        return _exact(ev, Fraction(root_num, root_den), x)
    return ev._decimal(lambda c: c.sqrt(ev._dec(x.number)))


def _round(ev: _Evaluator, args: Sequence[Value]) -> Value:
    places = _integer(args[1], "round()'s second argument") if len(args) > 1 else 0
    if abs(places) > ev.limits.max_digits:
        raise ValueError("too many decimal places")
    return _exact(ev, round(args[0].number, places), *args)


def _log(ev: _Evaluator, args: Sequence[Value]) -> Value:
    for value in args:
        if value.number <= 0:
            raise ValueError("the logarithm of a number ≤ 0 is not defined")
    if len(args) == 1:
        return ev._decimal(lambda c: c.ln(ev._dec(args[0].number)))
    base = args[1].number
    if base == 1:
        raise ValueError("a logarithm in base 1 is not defined")
    return ev._decimal(lambda c: c.divide(c.ln(ev._dec(args[0].number)), c.ln(ev._dec(base))))


def _log_base(base: int) -> Function:
    def log_n(ev: _Evaluator, args: Sequence[Value]) -> Value:
        (x,) = args
        if x.number <= 0:
            raise ValueError("the logarithm of a number ≤ 0 is not defined")
        if x.exact and x.number.denominator == 1:  # exact powers of the base: log10(1000) == 3
            n, k = x.number.numerator, 0
            while n % base == 0:
                n, k = n // base, k + 1
            if n == 1:
                return _exact(ev, k, x)
        return ev._decimal(lambda c: c.divide(c.ln(ev._dec(x.number)), c.ln(base)))

    return log_n


def _exp(ev: _Evaluator, args: Sequence[Value]) -> Value:
    (x,) = args
    if x.number == 0:
        return _exact(ev, 1, x)
    if x.number > ev.limits.max_digits * 2.31:  # e**x has about 0.434·x digits
        raise OverflowError
    return ev._decimal(lambda c: c.exp(ev._dec(x.number)))


def _factorial(ev: _Evaluator, args: Sequence[Value]) -> Value:
    n = _integer(args[0], "factorial()")
    if n < 0:
        raise ValueError("factorial() is not defined for negative numbers")
    if n > MAX_FACTORIAL or math.lgamma(n + 1) / math.log(10) > ev.limits.max_digits:
        raise OverflowError
    return _exact(ev, math.factorial(n), *args)


def _float(fn: Callable[..., float], *, periodic: bool = False) -> Function:
    def apply(ev: _Evaluator, args: Sequence[Value]) -> Value:
        if periodic and abs(args[0].number) > 2**50:
            raise ValueError("the argument is too large for an accurate result")
        return ev._float(fn, *(a.number for a in args))

    return apply


FUNCTIONS: dict[str, tuple[int, int, Function]] = {
    "sqrt": (1, 1, _sqrt),
    "abs": (1, 1, lambda ev, a: _exact(ev, abs(a[0].number), *a)),
    "round": (1, 2, _round),
    "min": (1, 64, lambda ev, a: min(a, key=lambda v: v.number)),
    "max": (1, 64, lambda ev, a: max(a, key=lambda v: v.number)),
    "floor": (1, 1, lambda ev, a: _exact(ev, math.floor(a[0].number), *a)),
    "ceil": (1, 1, lambda ev, a: _exact(ev, math.ceil(a[0].number), *a)),
    "factorial": (1, 1, _factorial),
    "gcd": (1, 64, lambda ev, a: _exact(ev, math.gcd(*(_integer(v, "gcd()") for v in a)), *a)),
    "lcm": (1, 64, lambda ev, a: _exact(ev, math.lcm(*(_integer(v, "lcm()") for v in a)), *a)),
    "exp": (1, 1, _exp),
    "log": (1, 2, _log),
    "ln": (1, 1, _log),
    "log10": (1, 1, _log_base(10)),
    "log2": (1, 1, _log_base(2)),
    "sin": (1, 1, _float(math.sin, periodic=True)),
    "cos": (1, 1, _float(math.cos, periodic=True)),
    "tan": (1, 1, _float(math.tan, periodic=True)),
    "asin": (1, 1, _float(math.asin)),
    "acos": (1, 1, _float(math.acos)),
    "atan": (1, 1, _float(math.atan)),
    "atan2": (2, 2, _float(math.atan2)),
    "degrees": (1, 1, _float(math.degrees)),
    "radians": (1, 1, _float(math.radians)),
}
