"""The exact calculator: examples, abuse bounds, and properties against Python's Fraction arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.tools import CalculatorLimits
from gateway.tools.base import ToolError
from gateway.tools.calculator import Calculator, describe

CALC = Calculator()


def result(expression: str) -> dict[str, object]:
    return describe(CALC.evaluate(expression), precision=CALC.limits.precision)


@pytest.mark.parametrize(
    ("expression", "expected", "fraction"),
    [
        ("0.1 + 0.2", "0.3", "3/10"),
        ("1/3 + 1/6", "0.5", "1/2"),
        ("2**10", "1024", None),
        ("2**-3", "0.125", "1/8"),
        ("2**9000 // 2**8999", "2", None),
        ("-2**2", "-4", None),
        ("(-2)**2", "4", None),
        ("7 // -2", "-4", None),
        ("-7 % 3", "2", None),
        ("1.5**2", "2.25", "9/4"),
        ("round(1234.5678, 2)", "1234.57", "123457/100"),
        ("round(2.5)", "2", None),
        ("sqrt(16/9)", "1.3333333333333333333333333333333333333333333333333", "4/3"),
        ("abs(-3.5)", "3.5", "7/2"),
        ("max(1, 2/3, -5)", "1", None),
        ("min(1, 2/3, -5)", "-5", None),
        ("floor(-1.5) + ceil(1.2)", "0", None),
        ("factorial(20)", "2432902008176640000", None),
        ("gcd(12, 18) * lcm(4, 6)", "72", None),
        ("log10(1000)", "3", None),
        ("log2(1024)", "10", None),
        ("1_000.5", "1000.5", "2001/2"),
        ("0x10 + 1e3", "1016", None),
        ("0**0", "1", None),
        ("1" + "+1" * 400, "401", None),
        ("(" * 150 + "1" + ")" * 150, "1", None),
    ],
)
def test_exact_results(expression: str, expected: str, fraction: str | None) -> None:
    out = result(expression)
    assert out["result"] == expected
    assert out["exact"] is True
    assert out.get("fraction") == fraction


@pytest.mark.parametrize(
    ("expression", "prefix"),
    [
        ("sqrt(2)", "1.414213562373095048801688724209698078"),
        ("2**0.5", "1.414213562373095048801688724209698078"),
        ("pi", "3.141592653589793238462643383279502884"),
        ("e", "2.718281828459045235360287471352662497"),
        ("log(8, 2)", "3"),
        ("sin(pi / 6)", "0.5"),
        ("cos(0)", "1"),
        ("sin(pi)", "0"),
    ],
)
def test_irrational_results_are_marked_inexact(expression: str, prefix: str) -> None:
    out = result(expression)
    assert out["exact"] is False
    assert str(out["result"]).startswith(prefix)
    assert len(str(out["result"]).replace(".", "").lstrip("0")) <= 40  # precision minus guard digits
    assert "fraction" not in out


@pytest.mark.parametrize(
    ("expression", "code", "message"),
    [
        ("9**9**9", "limit_exceeded", "exponent 387420489 is larger than the limit"),
        ("10**10000", "limit_exceeded", "more than 4000 digits"),
        ("2**10000 * 2**10000", "limit_exceeded", "more than 4000 digits"),
        ("factorial(1000) * factorial(700)", "limit_exceeded", "more than 4000 digits"),
        ("1e999999", "limit_exceeded", "more than 4000 digits"),
        ("exp(1000000)", "limit_exceeded", "too large"),
        ("factorial(5000)", "limit_exceeded", "too large"),
        ("-" * 100 + "1", "limit_exceeded", "nested deeper than 32"),
        ("(1+" * 40 + "1" + ")" * 40, "limit_exceeded", "nested deeper than 32"),
        ("sqrt(" * 40 + "2" + ")" * 40, "limit_exceeded", "nested deeper than 32"),
        ("1+" * 600 + "1", "limit_exceeded", "longer than 1000 characters"),
        ("1/0", "execution_error", "division by zero"),
        ("5 % 0", "execution_error", "division by zero"),
        ("0**-1", "execution_error", "division by zero"),
        ("(-8)**(1/3)", "execution_error", "not a real number"),
        ("sqrt(-1)", "execution_error", "not a real number"),
        ("log(0)", "execution_error", "not defined"),
        ("asin(2)", "execution_error", "math domain error"),
        ("sin(1e300)", "execution_error", "too large for an accurate result"),
        ("2 ^ 3", "invalid_arguments", "write **"),
        ("__import__('os').system('id')", "invalid_arguments", "unknown function"),
        ("(1).__class__", "invalid_arguments", "Attribute is not allowed"),
        ("x + 1", "invalid_arguments", "unknown name 'x'"),
        ("'a' * 3", "invalid_arguments", "only numbers"),
        ("True + 1", "invalid_arguments", "only numbers"),
        ("1j", "invalid_arguments", "only numbers"),
        ("[1, 2]", "invalid_arguments", "List is not allowed"),
        ("lambda: 1", "invalid_arguments", "Lambda is not allowed"),
        ("1 < 2", "invalid_arguments", "only arithmetic"),
        ("1 << 2", "invalid_arguments", "only arithmetic"),
        ("round(1, ndigits=2)", "invalid_arguments", "positional arguments only"),
        ("sqrt(1, 2)", "invalid_arguments", "takes 1 argument"),
        ("1 +", "invalid_arguments", "not a valid expression"),
        ("1\x00", "invalid_arguments", "not a valid expression"),
        ("-" * 999 + "1", "limit_exceeded", "nested"),
    ],
)
def test_errors_are_clear(expression: str, code: str, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        CALC.evaluate(expression)
    assert caught.value.code == code
    assert message in caught.value.message


def test_limits_come_from_the_config() -> None:
    strict = Calculator(CalculatorLimits(max_exponent=10, max_depth=3, max_expression_chars=10))
    with pytest.raises(ToolError, match="larger than the limit 10"):
        strict.evaluate("2**11")
    with pytest.raises(ToolError, match="longer than 10 characters"):
        strict.evaluate("1+1+1+1+1+1")
    assert strict.evaluate("2**10").number == 1024


async def test_run_takes_the_tool_arguments() -> None:
    out = await CALC.run({"expression": "1/3"})
    assert out == {
        "expression": "1/3",
        "result": "0.33333333333333333333333333333333333333333333333333",
        "exact": True,
        "fraction": "1/3",
    }
    with pytest.raises(ToolError) as caught:
        await CALC.run({"expr": "1"})
    assert caught.value.code == "invalid_arguments"


# -- properties: the calculator agrees with Fraction arithmetic ----------------------------------

small = st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=10**4)
OPS = ["+", "-", "*", "/", "//", "%"]


def _literal(value: Fraction) -> str:
    return f"({value.numerator}/{value.denominator})"


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Fraction]:
    if depth == 0 or draw(st.booleans()):
        value = draw(small)
        return _literal(value), value
    left_text, left = draw(expressions(depth - 1))
    right_text, right = draw(expressions(depth - 1))
    op = draw(st.sampled_from(OPS))
    if op in {"/", "//", "%"} and right == 0:
        op = "+"
    value = {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "//": lambda: Fraction(left // right),
        "%": lambda: left % right,
    }[op]()
    return f"({left_text} {op} {right_text})", value


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_agrees_with_fraction_arithmetic(case: tuple[str, Fraction]) -> None:
    text, expected = case
    value = CALC.evaluate(text)
    assert value.exact
    assert value.number == expected


@settings(max_examples=200, deadline=None)
@given(small, st.integers(min_value=-20, max_value=20))
def test_integer_powers_are_exact(base: Fraction, exponent: int) -> None:
    text = f"{_literal(base)} ** ({exponent})"
    if base == 0 and exponent < 0:
        with pytest.raises(ToolError, match="division by zero"):
            CALC.evaluate(text)
        return
    assert CALC.evaluate(text).number == base**exponent


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_decimal_literals_are_read_exactly(number: object) -> None:
    text = str(number)
    value = CALC.evaluate(text)
    assert value.exact and value.number == Fraction(text)
    assert Fraction(str(describe(value, precision=50)["result"])) == Fraction(text)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_sqrt_of_a_perfect_square_is_exact(root: int) -> None:
    value = CALC.evaluate(f"sqrt({root * root})")
    assert value.exact and value.number == root


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789+-*/%().^ e\x00_jx,", max_size=80))
def test_arbitrary_input_never_raises_anything_but_tool_errors(text: str) -> None:
    try:
        CALC.evaluate(text)
    except ToolError as exc:
        assert exc.code in {"invalid_arguments", "execution_error", "limit_exceeded"}


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=-10_000, max_value=10_000))
def test_every_accepted_result_can_be_printed(base: int, exponent: int) -> None:
    """Whatever passes the digit bound also passes Python's own integer-to-text limit."""
    try:
        value = CALC.evaluate(f"({base}) ** ({exponent}) / 7")
    except ToolError as exc:
        assert exc.code in {"limit_exceeded", "execution_error"}
        return
    assert describe(value, precision=50)["result"]
