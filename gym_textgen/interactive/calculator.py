"""A safe arithmetic evaluator for the calculator tool: exact rational arithmetic, never `eval`.

The expression is parsed with Python's `ast` and only numbers, `+ - * / // % **`, unary signs
and parentheses are evaluated, over `fractions.Fraction` (so `0.1 + 0.2` is `0.3` and `7 / 2`
is `3.5`). Size limits keep any input cheap: at most 200 characters and 64 operators, numbers
up to 10**15 in magnitude, integer exponents up to 64. Whatever goes wrong is a
`CalculatorError` whose message is fit to show the policy as the tool's reply. Results keep
at most 256 bits of numerator and denominator, so repeated powers of a fraction stay cheap.

>>> calculate("12*(3+4)")
'84'
>>> calculate("7 / 2"), calculate("1/3"), calculate("2**10 - 1")
('3.5', '0.333333', '1023')
>>> calculate("__import__('os')")
Traceback (most recent call last):
...
gym_textgen.interactive.calculator.CalculatorError: unsupported: a call (numbers and + - * / // % ** ( ) only)
"""

from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction

from gym_textgen.errors import TextGenValueError

MAX_CHARS = 200
MAX_OPERATORS = 64
MAX_MAGNITUDE = 10**15
MAX_EXPONENT = 64
DECIMALS = 6


class CalculatorError(TextGenValueError):
    """An expression the calculator refuses or cannot evaluate; its message is the reason."""


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


#: the most bits a result's numerator or denominator may hold (1e-15 ** 2 needs 100): repeated
#: powers of a fraction grow its denominator without bound, and its cost with it
MAX_BITS = 256


def _check(value: Fraction) -> Fraction:
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("too large: results are limited to 1e15")
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise CalculatorError("too precise: results are limited to about 75 digits")
    return value


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if not math.isfinite(node.value):
            raise CalculatorError("too large: results are limited to 1e15")
        return _check(
            Fraction(repr(node.value)) if type(node.value) is float else Fraction(node.value)
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalculatorError("division by zero")
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > MAX_EXPONENT:
                raise CalculatorError(f"exponents must be whole numbers up to {MAX_EXPONENT}")
            if left == 0 and right < 0:
                raise CalculatorError("division by zero")
            bits = max(left.numerator.bit_length(), left.denominator.bit_length())
            if bits * abs(right) > 4 * MAX_BITS:  # refused before it is computed
                raise CalculatorError("too precise: results are limited to about 75 digits")
            return _check(left ** int(right))
        return _check(_BINARY[type(node.op)](left, right))
    what = type(node).__name__
    if isinstance(node, ast.Name):
        what = node.id
    elif isinstance(node, ast.Call):
        what = "a call"
    elif isinstance(node, ast.Constant):
        what = repr(node.value)
    raise CalculatorError(f"unsupported: {what} (numbers and + - * / // % ** ( ) only)")


def format_number(value: Fraction) -> str:
    """An integer as itself, other numbers rounded (half up) to 6 decimals, trailing zeros
    dropped; exact (no float on the way)."""
    if value.denominator == 1:
        return str(value.numerator)
    rounded = math.floor(value * 10**DECIMALS + Fraction(1, 2))
    whole, part = divmod(abs(rounded), 10**DECIMALS)
    digits = f"{part:0{DECIMALS}d}".rstrip("0")
    text = ("-" if rounded < 0 else "") + str(whole) + (f".{digits}" if digits else "")
    return "0" if text == "-0" else text


def calculate(expression: str) -> str:
    """The value of an arithmetic `expression`, as text; a `CalculatorError` says why not."""
    if not isinstance(expression, str):
        raise CalculatorError(f"expects an expression as text, got {type(expression).__name__}")
    text = expression.strip().replace("×", "*").replace("÷", "/")
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"expression too long ({len(text)} characters, at most {MAX_CHARS})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise CalculatorError(f"cannot parse {text!r}") from None
    operators = sum(isinstance(n, (ast.BinOp, ast.UnaryOp)) for n in ast.walk(tree))
    if operators > MAX_OPERATORS:
        raise CalculatorError(f"too many operations ({operators}, at most {MAX_OPERATORS})")
    return format_number(_evaluate(tree.body))


__all__ = ["CalculatorError", "calculate", "format_number"]
