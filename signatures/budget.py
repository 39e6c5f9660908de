"""A render budget for user-written templates: time, loop iterations, output and value sizes.

Templates are written by comms and IT users and run in every preview, lint, export, deployment and add-in
call, so a template must not be able to hold a worker. The sandbox (signatures.rendering) calls into the
active :class:`Budget` on every loop iteration, every call, filter and intercepted operator, and the
renderer counts the output as it streams. When one limit runs out, :class:`BudgetExceeded` names it.

Arithmetic and string building that could allocate without bound in one step (``10**10**9``,
``'x' * 10**9``, ``'%999999999d' % 1``, ``'x'.ljust(10**9)``) are refused before they run, from the sizes
of their operands.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from service.errors import Invalid

MAX_SECONDS = 1.0  # a signature renders in well under a millisecond
MAX_ITERATIONS = 10_000  # loop iterations per render, all loops together
MAX_OUTPUT_CHARS = 200_000  # the largest client budget (the Outlook add-in) is 30,000
MAX_VALUE_CHARS = 100_000  # one string or list built inside the template
MAX_INT_BITS = 4_096  # ~1,200 decimal digits
MAX_NUMBER_ARG = 10_000  # a width, count or size passed to a filter or method
MAX_SOURCE_CHARS = 100_000  # a template's source
_CHECK_CLOCK_EVERY = 64  # steps between two reads of the clock

LIMITS = {
    "time": f"{MAX_SECONDS:g} seconds of rendering",
    "loop_iterations": f"{MAX_ITERATIONS:,} loop iterations",
    "output_size": f"{MAX_OUTPUT_CHARS:,} characters of output",
    "value_size": f"{MAX_VALUE_CHARS:,} characters in one value",
    "number_size": f"numbers of {MAX_INT_BITS:,} bits",
    "argument_size": f"arguments up to {MAX_NUMBER_ARG:,}",
    "source_size": f"{MAX_SOURCE_CHARS:,} characters of source",
}


class BudgetExceeded(Invalid):
    code = "template_limit"

    def __init__(self, limit: str, what: str = ""):
        self.limit = limit
        reason = f"{what}: " if what else ""
        super().__init__(
            f"The template went over its limit of {LIMITS[limit]} ({reason}limit '{limit}'); "
            "simplify it (fewer or shorter loops, smaller values).",
            details={"limit": limit, "allowed": LIMITS[limit]},
        )


class Budget:
    __slots__ = ("deadline", "steps", "iterations", "output")

    def __init__(self, seconds: float = MAX_SECONDS):
        self.deadline = time.monotonic() + seconds
        self.steps = 0
        self.iterations = 0
        self.output = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps % _CHECK_CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise BudgetExceeded("time")

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise BudgetExceeded("loop_iterations")
            self.step()
            yield item

    def emit(self, chunks: Iterable[str]) -> str:
        """Join one template's output stream, stopping at the output limit (each of the HTML and text
        templates has its own iteration and output allowance; time is shared)."""
        self.iterations = self.output = 0
        parts = []
        for chunk in chunks:
            self.output += len(chunk)
            if self.output > MAX_OUTPUT_CHARS:
                raise BudgetExceeded("output_size")
            parts.append(chunk)
        self.step()
        return "".join(parts)


_active: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


@contextmanager
def budget(seconds: float = MAX_SECONDS) -> Iterator[Budget]:
    """One render's budget (a nested render shares the outer one)."""
    current = _active.get()
    if current is not None:
        yield current
        return
    new = Budget(seconds)
    token = _active.set(new)
    try:
        yield new
    finally:
        _active.reset(token)


def active() -> Budget | None:
    return _active.get()


def step() -> None:
    b = _active.get()
    if b is not None:
        b.step()


def guarded_iter(iterable: Iterable[Any]) -> Iterable[Any]:
    """The iterable of a template's {% for %} loop, counted against the budget."""
    b = _active.get()
    if b is None:
        b = Budget()  # a template rendered outside render(): still bounded, on its own budget
    return b.iterate(iterable)


# ---------------------------------------------------------------- sizes of values and operations


def _size(value: Any) -> int:
    if isinstance(value, (str, bytes, list, tuple, dict)):
        return len(value)
    return 0


def check_total(items: list[Any] | tuple[Any, ...]) -> None:
    """Joining or summing `items` builds a value as large as all of them together: refuse it beforehand."""
    total = len(items)
    for item in items:
        total += _size(item)
        if total > MAX_VALUE_CHARS:
            raise BudgetExceeded("value_size", "a join")


def check_value(value: Any) -> Any:
    if _size(value) > MAX_VALUE_CHARS:
        raise BudgetExceeded("value_size")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded("number_size")
    return value


def _weight(value: Any) -> int:
    """Size of a value with its items' sizes (one level): what repeating it copies by reference, then joins."""
    if isinstance(value, (list, tuple)):
        return len(value) + sum(_size(item) for item in value)
    return _size(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    li, ri = _int(left), _int(right)
    if operator == "**":
        if li is not None and ri is not None and ri > 0 and abs(li) > 1:
            if ri * li.bit_length() > MAX_INT_BITS:
                raise BudgetExceeded("number_size", "a power")
        elif isinstance(right, float) and isinstance(left, (int, float)) and abs(right) > MAX_INT_BITS:
            raise BudgetExceeded("number_size", "a power")
    elif operator == "*":
        if li is not None and ri is not None:
            if li.bit_length() + ri.bit_length() > MAX_INT_BITS:
                raise BudgetExceeded("number_size", "a product")
        elif (
            ri is not None
            and _weight(left) * max(ri, 0) > MAX_VALUE_CHARS
            or li is not None
            and _weight(right) * max(li, 0) > MAX_VALUE_CHARS
        ):
            raise BudgetExceeded("value_size", "a repetition")
    elif operator == "+":
        if _size(left) + _size(right) > MAX_VALUE_CHARS:
            raise BudgetExceeded("value_size", "a concatenation")
    elif operator == "%" and isinstance(left, str):
        check_format_string(left)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")


def check_format_string(fmt: str) -> None:
    """`'%9999999d' % 1` and `'{:9999999}'.format(1)` allocate their width: refuse large widths."""
    for m in (*_PERCENT_SPEC.finditer(fmt), *_BRACE_SPEC.finditer(fmt)):
        for number in m.groups():
            if number and int(number) > MAX_NUMBER_ARG:
                raise BudgetExceeded("argument_size", "a format width")


def check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        number = _int(value)
        if number is not None and abs(number) > MAX_NUMBER_ARG:
            raise BudgetExceeded("argument_size")
        if isinstance(value, float) and abs(value) > MAX_NUMBER_ARG:
            raise BudgetExceeded("argument_size")


def check_replace(target: Any, args: tuple[Any, ...]) -> None:
    """str.replace grows a string by count × the length difference: estimate it before running."""
    if isinstance(target, str) and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        count = target.count(old) if old else len(target) + 1
        if len(target) + count * (len(new) - len(old)) > MAX_VALUE_CHARS:
            raise BudgetExceeded("value_size", "a replacement")
