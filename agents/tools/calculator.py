"""calculator: arithmetic evaluated over the ``ast`` with a whitelist, never ``eval``.

Allowed: numbers, + - * / // % **, unary + -, parentheses, the constants pi/e/tau and a few math
functions. Everything else (names, attributes, subscripts, strings, lambdas) is refused, and sizes are
bounded so that ``9**9**9`` or ``10**1000 * 10**1000`` cannot eat the machine.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from agents.tools.base import FunctionTool, ToolConfig, ToolError, function_tool, register_tool

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt, "log": math.log, "log10": math.log10, "log2": math.log2, "exp": math.exp,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "abs": abs, "round": round, "floor": math.floor,
    "ceil": math.ceil, "min": min, "max": max,
}


class CalculatorConfig(ToolConfig):
    max_length: int = Field(1000, ge=1, le=100_000, description="longest expression accepted")
    max_exponent: int = Field(10_000, ge=1, description="largest |exponent| in a power")
    max_bits: int = Field(4096, ge=64, description="largest integer result, in bits")


class Calculator:
    """Evaluates one expression under the limits of ``config``."""

    def __init__(self, config: CalculatorConfig) -> None:
        self.config = config

    def evaluate(self, expression: str) -> Number:
        text = expression.strip()
        if not text:
            raise ToolError("empty expression")
        if len(text) > self.config.max_length:
            raise ToolError(f"expression too long: {len(text)} characters, limit {self.config.max_length}")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ToolError(f"not an arithmetic expression: {exc.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise ToolError("expression too deeply nested") from None
        try:
            return self._eval(tree.body)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("result too large") from None
        except RecursionError:
            raise ToolError("expression too deeply nested") from None
        except (ValueError, TypeError) as exc:
            raise ToolError(f"math error: {exc}") from None

    def _eval(self, node: ast.expr) -> Number:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ToolError(f"only numbers are allowed, not {node.value!r}")
            return self._check(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._eval(node.left), self._eval(node.right)
            if isinstance(node.op, ast.Pow):
                self._check_power(left, right)
            return self._check(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._eval(node.operand))
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ToolError(f"name {node.id!r} is not allowed; constants: {', '.join(_CONSTANTS)}")
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            raise ToolError("attribute access is not allowed")
        raise ToolError(f"{node.__class__.__name__} is not allowed in an arithmetic expression")

    def _call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ToolError(f"function {what!r} is not allowed; functions: {', '.join(_FUNCTIONS)}")
        if node.keywords:
            raise ToolError("keyword arguments are not allowed")
        args = [self._eval(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and not isinstance(args[1], int):
            raise ToolError("round() digits must be an integer")
        return self._check(_FUNCTIONS[node.func.id](*args))

    def _check_power(self, base: Number, exponent: Number) -> None:
        if abs(exponent) > self.config.max_exponent:
            raise ToolError(f"exponent too large: {exponent}, limit {self.config.max_exponent}")
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            bits = exponent * math.log2(abs(base))
            if bits > self.config.max_bits:
                raise ToolError(f"result too large: about {int(bits)} bits, limit {self.config.max_bits}")

    def _check(self, value: Number) -> Number:
        if isinstance(value, int) and value.bit_length() > self.config.max_bits:
            raise ToolError(f"result too large: {value.bit_length()} bits, limit {self.config.max_bits}")
        if isinstance(value, complex):
            raise ToolError("complex results are not supported")
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolError(f"result is not a finite number: {value}")
        return value


def format_number(value: Number) -> str:
    """Integers exactly; floats without noise when they are whole."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@register_tool("calculator", "evaluate arithmetic: numbers, + - * / // % **, parentheses, pi, e, "
               "sqrt/log/exp/sin/cos/tan/abs/round/floor/ceil/min/max", CalculatorConfig,
               usage="<arithmetic expression>")
def calculator(config: CalculatorConfig, base_dir: Path) -> FunctionTool:
    calc = Calculator(config)

    async def run(tool_input: str) -> str:
        return format_number(calc.evaluate(tool_input))

    return function_tool("calculator", run)
