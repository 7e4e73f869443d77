"""The one formula parser: R's model formulas, read as data and never run as code.

A formula such as ``log(y) ~ scale(age) + factor(wave) * arm + (1 | school)`` is split into tokens and
parsed by a small recursive-descent parser into a tree of names, numbers, operators and calls. Only
the pieces listed in :data:`SUPPORTED` are accepted; anything else (a string, a subscript, attribute
access, a call of any other function, a keyword other than the documented ones) is refused with one
:class:`~helpers.validate.DataError` before any value is computed. Nothing here calls ``eval``, and
no part of the formula's text reaches another library.

The values of the model's variables are computed with numpy from the tree (:class:`ModelSpec`), and the
model matrix is built as R's ``model.matrix`` builds it: terms ordered by degree, the intercept first,
treatment contrasts for unordered factors and ``contr.poly`` for ordered ones, full indicator coding
where R uses it (the first factor of a model without intercept, a factor whose margin is absent), and
the first variable varying fastest within an interaction.

Names follow the package's convention: plain and transformed variables as R prints them (``x``,
``scale(age)``, ``I(age^2)``, ``poly(age, 2)1``), the intercept as ``Intercept`` and a factor's columns
as ``factor(wave)[T.2]`` (treatment contrast), ``arm[a]`` (full coding) or ``dose[.L]`` (polynomial
contrast); :func:`helpers.formula.r_term_name` turns them into R's ``(Intercept)``,
``factor(wave)2``, ``arma`` and ``dose.L``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .validate import DataError, check_one_group

__all__ = [
    "SUPPORTED",
    "FUNCTIONS",
    "Bar",
    "Formula",
    "ModelSpec",
    "parse",
    "r_number",
    "r_term_name",
    "RANDOM_TERMS_SUPPORTED",
    "ParsedFormula",
    "check_bars",
    "parse_formula",
]

#: Every function a formula may call, as written in it.
FUNCTIONS = (
    "factor",
    "C",
    "scale",
    "center",
    "poly",
    "I",
    "log",
    "exp",
    "sqrt",
    "np.log",
    "np.exp",
    "np.sqrt",
    "offset",
)
_KEYWORDS = {"scale": ("center", "scale"), "poly": ("degree",)}
_ELEMENTWISE = {
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "np.log": np.log,
    "np.exp": np.exp,
    "np.sqrt": np.sqrt,
}

#: What a formula may contain, as one sentence (the tail of every refusal).
SUPPORTED = (
    "a formula may contain column names (bare, or in backticks for any other name), numbers, the "
    "operators + - * : ^ and parentheses, 0 / 1 / -1 for the intercept, one '(1 | group)' term, "
    "arithmetic (+ - * / ^) inside I() and inside the functions, and the functions "
    + ", ".join(FUNCTIONS)
    + " (scale also takes center = and scale =, poly takes degree =)"
)


def _refuse(formula: str, piece: str, why: str = "is not supported") -> DataError:
    return DataError(f"The formula {formula!r} uses {piece!r}, which {why}; {SUPPORTED}.")


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "tick", "num", "op", "end"
    text: str
    pos: int


_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME = re.compile(r"[^\W\d][\w.]*|\.(?!\d)[\w.]*")
_OPERATORS = ("||", "**", "~", "+", "-", "*", "/", "^", ":", "(", ")", ",", "|", "=")


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise DataError(
                    f"The formula {text!r} has an opening backtick (`) without a closing one; put "
                    "each odd column name between two backticks."
                )
            if end == i + 1:
                raise DataError(
                    f"The formula {text!r} has empty backticks (``); put a column name between them."
                )
            tokens.append(_Token("tick", text[i + 1 : end], i))
            i = end + 1
            continue
        if text.startswith("::", i) or ch in "$@":
            start = i
            while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._"):
                start -= 1
            piece = re.match(r"[\w.]*(::?:?|\$|@)[\w.]*", text[start:]).group(0)
            raise _refuse(text, piece, "reaches into a package or an object")
        number = _NUMBER.match(text, i)
        if number:
            tokens.append(_Token("num", number.group(0), i))
            i = number.end()
            continue
        name = _NAME.match(text, i)
        if name:
            tokens.append(_Token("name", name.group(0), i))
            i = name.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", "^" if op == "**" else op, i))
                i += len(op)
                break
        else:
            if ch in "'\"":
                end = text.find(ch, i + 1)
                shown = text[i : end + 1] if end > 0 else text[i:]
                raise _refuse(text, shown[:60], "is a string, and a formula holds no strings")
            raise _refuse(text, ch, "is not a formula operator")
    tokens.append(_Token("end", "", n))
    return tokens


# ------------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Name:
    id: str
    ticked: bool = False


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Unary:
    op: str
    operand: object


@dataclass(frozen=True)
class Binary:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Paren:
    inner: object


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    kwargs: tuple  # ((name, node), ...)


_SYNTACTIC = re.compile(r"^((\.[A-Za-z_.]|[A-Za-z])[A-Za-z0-9_.]*|\.)$")


def r_number(value: float) -> str:
    """A number as R prints it with 15 significant digits (``2``, ``0.5``, ``1e-05``, ``1e+05``).

    Examples
    --------
    >>> [r_number(v) for v in (2.0, 0.5, 1e-5, 1e5, 123456.0, -3.25)]
    ['2', '0.5', '1e-05', '1e+05', '123456', '-3.25']
    """
    value = float(value)
    if not np.isfinite(value):
        return {np.inf: "Inf", -np.inf: "-Inf"}.get(value, "NaN")
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.14e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    exp = int(exponent)
    digits = len(mantissa.replace("-", "").replace(".", ""))
    fixed = f"{value:.{max(0, digits - 1 - exp)}f}"
    sci = f"{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return fixed if len(fixed) <= len(sci) else sci


def deparse(node, top: bool = False) -> str:
    """R's deparse of a node: ``x + 1``, ``x/2``, ``x^2``, ``a:b``, ``f(x, k = 2)``.

    A bare column keeps its name as written (``top``); inside a call, a name R cannot write bare is
    put in backticks, as R prints it.
    """
    if isinstance(node, Name):
        if top or not node.ticked or _SYNTACTIC.match(node.id):
            return node.id
        return f"`{node.id}`"
    if isinstance(node, Num):
        return r_number(node.value)
    if isinstance(node, Unary):
        return node.op + deparse(node.operand)
    if isinstance(node, Paren):
        return f"({deparse(node.inner)})"
    if isinstance(node, Binary):
        spaced = node.op in ("+", "-", "*", "|", "||")
        sep = f" {node.op} " if spaced else node.op
        return deparse(node.left) + sep + deparse(node.right)
    if isinstance(node, Call):
        parts = [deparse(a) for a in node.args] + [f"{k} = {deparse(v)}" for k, v in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    raise TypeError(f"not a formula node: {node!r}")


# ------------------------------------------------------------------------------------------ parser


class _Parser:
    """Precedence climbing over R's operators, lowest first: ``|`` ``||``; ``+ -``; ``* /``; ``:``;
    unary ``+ -``; ``^`` (right-associative)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, op: str) -> None:
        token = self.take()
        if token.kind != "op" or token.text != op:
            shown = token.text or "the end of the formula"
            raise DataError(
                f"The formula {self.text!r} has a syntax error: {shown!r} where {op!r} was expected; check its "
                "brackets and operators."
            )

    def at(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text in ops

    def binary(self, level: int):
        levels = (("|", "||"), ("+", "-"), ("*", "/"), (":",))
        if level == len(levels):
            return self.unary()
        left = self.binary(level + 1)
        while self.at(*levels[level]):
            op = self.take().text
            left = Binary(op, left, self.binary(level + 1))
        return left

    def unary(self):
        if self.at("+", "-"):
            op = self.take().text
            return Unary(op, self.unary())
        return self.power()

    def power(self):
        base = self.atom()
        if self.at("^"):
            self.take()
            return Binary("^", base, self.unary())
        return base

    def atom(self):
        token = self.take()
        if token.kind == "num":
            return Num(float(token.text))
        if token.kind == "tick":
            return Name(token.text, ticked=True)
        if token.kind == "name":
            if self.at("("):
                return self.call(token.text)
            return Name(token.text)
        if token.kind == "op" and token.text == "(":
            inner = self.binary(0)
            self.expect(")")
            return Paren(inner)
        shown = token.text or "the end of the formula"
        raise DataError(
            f"The formula {self.text!r} has a syntax error: {shown!r} where a column name, number or '(' was "
            "expected; check its brackets and operators."
        )

    def call(self, func: str):
        if func not in FUNCTIONS:
            raise _refuse(self.text, func + "(...)", "is not a supported function")
        self.expect("(")
        args, kwargs = [], []
        while not self.at(")"):
            token = self.peek()
            after = self.tokens[self.i + 1]
            if token.kind == "name" and after.kind == "op" and after.text == "=":
                if token.text not in _KEYWORDS.get(func, ()):
                    raise _refuse(
                        self.text, f"{func}({token.text} = ...)", "is not a supported argument"
                    )
                self.take()
                self.take()
                kwargs.append((token.text, self.binary(0)))
            else:
                if kwargs:
                    raise _refuse(self.text, func, "has a positional argument after a keyword")
                args.append(self.binary(0))
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return Call(func, tuple(args), tuple(kwargs))

    def formula(self):
        lhs = None
        if not self.at("~"):
            lhs = self.binary(0)
        if not self.at("~"):
            token = self.peek()
            if token.kind == "end":
                raise _no_tilde(self.text)
            raise DataError(
                f"The formula {self.text!r} has a syntax error: {token.text!r} where an operator was expected; check "
                "its brackets and operators."
            )
        self.take()
        rhs = self.binary(0)
        token = self.peek()
        if token.kind != "end":
            raise DataError(
                f"The formula {self.text!r} has a syntax error: {token.text!r} after its end; check its brackets and "
                "operators."
            )
        return lhs, rhs


# ------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Bar:
    """A random-effects term ``(terms | group)`` or ``(terms || group)``.

    Attributes
    ----------
    terms : tuple of tuple of str
        The terms left of the bar, each a tuple of variable labels (``()`` is never listed).
    intercept : bool
        Whether the random effects include an intercept.
    group : str
        The grouping column (the label of the right-hand side).
    double : bool
        True for ``||`` (uncorrelated random effects).
    text : str
        The term as R prints it, ``(1 | g)``.
    nested : bool
        True when the grouping is not one column (``g/h``, ``g:h``, ...).
    """

    terms: tuple
    intercept: bool
    group: str
    double: bool
    text: str
    nested: bool = False


@dataclass(frozen=True)
class Variable:
    """A variable of the model: a column or a transform of columns, keyed by its R label."""

    label: str
    node: object
    columns: tuple


@dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes
    ----------
    text : str
    response : Variable or None
    variables : dict
        Label -> :class:`Variable`, in order of first appearance (R's order of variables).
    terms : tuple of tuple of str
        The fixed-effect terms in R's order (by degree, then as written); each a tuple of labels.
    intercept : bool
    offsets : tuple of Variable
    bars : tuple of Bar
    """

    text: str
    response: Variable | None
    variables: dict
    terms: tuple
    intercept: bool
    offsets: tuple = ()
    bars: tuple = ()

    @property
    def columns(self) -> list:
        """The data columns the response, the fixed effects and the offsets use, in order."""
        out = []
        for var in (
            ([self.response] if self.response else []) + self.predictors + list(self.offsets)
        ):
            out += [c for c in var.columns if c not in out]
        return out

    @property
    def predictors(self) -> list:
        """The variables of the fixed-effect terms."""
        used = {label for term in self.terms for label in term}
        return [v for label, v in self.variables.items() if label in used]

    @property
    def fixed_text(self) -> str:
        """The fixed-effects part as text: ``y ~ x + f + x:f``."""
        parts = [] if self.intercept else ["0"]
        parts += [":".join(term) for term in self.terms]
        parts += [f"offset({deparse(v.node)})" for v in self.offsets]
        lhs = self.response.label if self.response is not None else ""
        return f"{lhs} ~ {' + '.join(parts) if parts else '1'}"


@dataclass
class _Terms:
    terms: list
    intercept: bool | None = None


class _Model:
    """Turns the parsed tree into terms, variables, offsets and bars, checking every call."""

    def __init__(self, text: str):
        self.text = text
        self.variables: dict = {}
        self.offsets: list = []
        self.bars: list = []

    def refuse(self, node, why: str = "is not supported here") -> DataError:
        return _refuse(self.text, deparse(node), why)

    # -- values (inside calls): arithmetic and the allowed functions
    def check_value(self, node, columns: list) -> None:
        if isinstance(node, Name):
            self.check_name(node)
            if node.id not in columns:
                columns.append(node.id)
        elif isinstance(node, Num):
            return
        elif isinstance(node, Unary):
            self.check_value(node.operand, columns)
        elif isinstance(node, Paren):
            self.check_value(node.inner, columns)
        elif isinstance(node, Binary):
            if node.op not in ("+", "-", "*", "/", "^"):
                raise self.refuse(
                    node, f"uses {node.op!r} inside a function, where only + - * / ^ work"
                )
            self.check_value(node.left, columns)
            self.check_value(node.right, columns)
        elif isinstance(node, Call):
            if node.func in ("factor", "C", "poly", "offset"):
                raise self.refuse(node, "cannot be used inside another function")
            self.check_call(node, columns)
        else:  # pragma: no cover - the parser makes no other nodes
            raise TypeError(node)

    def check_name(self, node: Name) -> None:
        if not node.ticked and (
            node.id.startswith("__") or any(p.startswith("__") for p in node.id.split("."))
        ):
            raise self.refuse(node, "is a reserved (dunder) name")

    def check_call(self, node: Call, columns: list) -> None:
        func, args, kwargs = node.func, node.args, dict(node.kwargs)
        n_args = {"scale": (1, 3), "poly": (1, 2)}.get(func, (1, 1))
        if not n_args[0] <= len(args) + len(kwargs) <= n_args[1] or not args:
            raise self.refuse(node, f"gives {func}() the wrong number of arguments")
        self.check_value(args[0], columns)
        if func == "scale":
            for position, key in enumerate(("center", "scale"), start=1):
                value = args[position] if position < len(args) else kwargs.get(key)
                if value is not None and _flag(value) is None and _constant(value) is None:
                    raise self.refuse(value, f"is not TRUE, FALSE or a number (scale's {key} =)")
        if func == "poly":
            value = args[1] if len(args) > 1 else kwargs.get("degree")
            degree = _constant(value) if value is not None else None
            if degree is None or degree != int(degree) or degree < 1:
                raise self.refuse(node, "needs a whole-number degree of at least 1, as poly(x, 2)")

    def variable(self, node) -> str:
        columns: list = []
        if isinstance(node, Name):
            self.check_name(node)
            columns = [node.id]
            label = node.id
        elif isinstance(node, Call):
            self.check_call(node, columns)
            label = deparse(node)
        else:
            self.check_value(node, columns)
            label = deparse(node)
        self.variables.setdefault(label, Variable(label, node, tuple(columns)))
        return label

    # -- the formula algebra
    def terms(self, node) -> _Terms:
        if isinstance(node, Paren):
            inner = node.inner
            if isinstance(inner, Binary) and inner.op in ("|", "||"):
                self.bar(node)
                return _Terms([])
            return self.terms(inner)
        if isinstance(node, Num):
            if node.value in (0.0, 1.0):
                return _Terms([], intercept=node.value == 1.0)
            raise self.refuse(
                node, "is a number; a formula's numbers are 0 and 1 (write I(...) for arithmetic)"
            )
        if isinstance(node, Unary):
            inner = self.terms(node.operand)
            if node.op == "+":
                return inner
            return self.remove(_Terms([]), inner)
        if isinstance(node, Binary):
            if node.op in ("|", "||"):
                raise DataError(
                    f"The formula {self.text!r} has a '{node.op}' outside a '(1 | group)' term. Write the "
                    "random intercept in parentheses, as '(1 | group)'."
                )
            if node.op == "+":
                left, right = self.terms(node.left), self.terms(node.right)
                merged = left.terms + [t for t in right.terms if t not in left.terms]
                return _Terms(
                    merged, right.intercept if right.intercept is not None else left.intercept
                )
            if node.op == "-":
                return self.remove(self.terms(node.left), self.terms(node.right))
            if node.op in (":", "*"):
                left, right = self.terms(node.left), self.terms(node.right)
                if left.intercept is not None or right.intercept is not None:
                    raise self.refuse(node, "mixes the intercept (0 or 1) into an interaction")
                product = [a | b for a in left.terms for b in right.terms]
                merged = (left.terms + right.terms if node.op == "*" else []) + product
                return _Terms(list(dict.fromkeys(merged)))
            if node.op == "^":
                base = self.terms(node.left)
                power = _constant(node.right)
                if base.intercept is not None or power is None or power != int(power) or power < 1:
                    raise self.refuse(
                        node, "is not (terms)^k with a whole number k; write I(x^2) for a power"
                    )
                out = list(base.terms)
                for _ in range(int(power) - 1):
                    out = list(dict.fromkeys(out + [a | b for a in out for b in base.terms]))
                return _Terms(out)
            raise self.refuse(
                node, f"uses {node.op!r} between terms (nesting with / is not supported)"
            )
        if isinstance(node, Call) and node.func == "offset":
            self.check_call(node, [])
            columns: list = []
            self.check_value(node.args[0], columns)
            self.offsets.append(Variable(deparse(node), node.args[0], tuple(columns)))
            return _Terms([])
        return _Terms([frozenset([self.variable(node)])])

    @staticmethod
    def remove(left: _Terms, right: _Terms) -> _Terms:
        kept = [t for t in left.terms if t not in right.terms]
        intercept = left.intercept
        if right.intercept is not None:
            intercept = not right.intercept
        return _Terms(kept, intercept)

    def bar(self, node: Paren) -> None:
        inner = node.inner
        text = deparse(node)
        group_node = inner.right
        while isinstance(group_node, Paren):
            group_node = group_node.inner
        nested = isinstance(group_node, Binary) and group_node.op in ("/", ":", "+", "*")
        if not nested and not isinstance(group_node, Name):
            raise self.refuse(group_node, "is not a grouping column")
        if nested:
            group = deparse(group_node)
            for part in (group_node.left, group_node.right):
                if isinstance(part, Name):
                    self.check_name(part)
        else:
            self.check_name(group_node)
            group = group_node.id
        inside = self.terms(inner.left)
        self.bars.append(
            Bar(
                terms=tuple(tuple(self.order(t)) for t in inside.terms),
                intercept=inside.intercept is not False,
                group=group,
                double=inner.op == "||",
                text=text,
                nested=nested,
            )
        )

    def order(self, term) -> list:
        """A term's labels in the order the variables first appear (R's order)."""
        return [label for label in self.variables if label in term]


def _no_tilde(formula: object) -> DataError:
    return DataError(
        f"The formula {formula!r} has no '~'. Write it as 'response ~ predictors + (1 | group)'."
    )


def parse(formula: str) -> Formula:
    """Parse an R model formula, refusing anything that is not on the supported list.

    Parameters
    ----------
    formula : str

    Returns
    -------
    Formula

    Raises
    ------
    DataError
        For anything not on :data:`SUPPORTED`, naming the offending piece, and for syntax errors.

    Examples
    --------
    >>> f = parse("log(y) ~ scale(age) * arm + I(age^2) + (1 | school)")
    >>> f.response.label, [":".join(t) for t in f.terms], f.bars[0].group
    ('log(y)', ['scale(age)', 'arm', 'I(age^2)', 'scale(age):arm'], 'school')
    >>> parse("y ~ x + os.system(1)")
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The formula 'y ~ x + os.system(1)' uses 'os.system(...)', which is not a supported function; a formula may contain column names (bare, or in backticks for any other name), numbers, the operators + - * : ^ and parentheses, 0 / 1 / -1 for the intercept, one '(1 | group)' term, arithmetic (+ - * / ^) inside I() and inside the functions, and the functions factor, C, scale, center, poly, I, log, exp, sqrt, np.log, np.exp, np.sqrt, offset (scale also takes center = and scale =, poly takes degree =).
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise _no_tilde(formula)
    lhs, rhs = _Parser(formula).formula()
    if lhs is None:
        raise DataError(
            f"The formula {formula!r} has no response left of '~'. Write it as 'y ~ x + (1 | group)'."
        )
    model = _Model(formula)
    response = model.variable(lhs)
    response_var = model.variables.pop(response)
    found = model.terms(rhs)
    variables = dict(model.variables)
    terms = [tuple(model.order(t)) for t in found.terms if t]
    terms = sorted(dict.fromkeys(terms), key=len)  # stable: by degree, then as written
    return Formula(
        text=formula,
        response=response_var,
        variables=variables,
        terms=tuple(terms),
        intercept=found.intercept is not False,
        offsets=tuple(model.offsets),
        bars=tuple(model.bars),
    )


def _flag(node):
    if isinstance(node, Name) and not node.ticked and node.id in ("TRUE", "FALSE", "T", "F"):
        return node.id in ("TRUE", "T")
    return None


def _constant(node):
    """The value of a constant expression (a number, possibly negated or in parentheses), else None."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Paren):
        return _constant(node.inner)
    if isinstance(node, Unary):
        inner = _constant(node.operand)
        return None if inner is None else (-inner if node.op == "-" else inner)
    return None


# ------------------------------------------------------------------------------------ the values


@dataclass
class Factor:
    """A categorical variable: codes into ``levels`` (-1 for missing) and how to print each level."""

    codes: np.ndarray
    levels: list
    names: list
    ordered: bool = False


def level_name(value) -> str:
    """A level as R prints it: ``TRUE``/``FALSE`` for logicals, numbers with 15 digits, else text."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return r_number(float(value))
    return str(value)


def _is_bool(values: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(values.dtype)


def _is_text(values: pd.Series) -> bool:
    return (
        pd.api.types.is_object_dtype(values.dtype)
        or pd.api.types.is_string_dtype(values.dtype)
        and not isinstance(values.dtype, pd.CategoricalDtype)
    )


def is_categorical(values: pd.Series) -> bool:
    """Whether a column enters a model as a factor (categorical, logical or text), as R treats it."""
    return isinstance(values.dtype, pd.CategoricalDtype) or _is_bool(values) or _is_text(values)


def _sorted_levels(values) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: group by type, then sort within
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _factor_of_series(values: pd.Series, levels=None) -> Factor:
    if isinstance(values.dtype, pd.CategoricalDtype):
        ordered = bool(values.dtype.ordered)
        if levels is None:
            levels = list(values.cat.categories)
            codes = values.cat.codes.to_numpy().astype(np.int64)
            return Factor(codes, levels, [level_name(v) for v in levels], ordered)
        return _recode(values.astype(object), levels, ordered)
    if _is_bool(values):
        present = values.to_numpy(dtype=object, na_value=None)
        codes = np.array([-1 if v is None else int(bool(v)) for v in present], dtype=np.int64)
        if levels is None:
            levels = [False, True]
            return Factor(codes, levels, ["FALSE", "TRUE"])
        return _recode(values.astype(object), levels, False)
    obj = values.astype(object).where(values.notna(), None)
    if levels is None:
        levels = _sorted_levels(pd.unique(obj.dropna()).tolist())
    return _recode(obj, levels, False)


def _recode(values: pd.Series, levels: list, ordered: bool) -> Factor:
    index = pd.Index(levels, dtype=object)
    present = values.notna().to_numpy()
    codes = np.full(len(values), -1, dtype=np.int64)
    if present.any():
        found = index.get_indexer(pd.Index(values[present].to_numpy(dtype=object), dtype=object))
        if (found < 0).any():
            new = values[present].to_numpy(dtype=object)[found < 0][0]
            raise DataError(
                f"The level {new!r} was not seen when the model was fitted (it knows "
                + ", ".join(repr(v) for v in levels[:12])
                + "); give rows with one of those levels."
            )
        codes[present] = found
    return Factor(codes, list(levels), [level_name(v) for v in levels], ordered)


def _factor_of_numbers(values: np.ndarray, levels=None) -> Factor:
    present = ~np.isnan(values)
    if levels is None:
        levels = sorted(set(values[present].tolist()))
    index = {v: k for k, v in enumerate(levels)}
    codes = np.full(len(values), -1, dtype=np.int64)
    for row in np.flatnonzero(present):
        code = index.get(float(values[row]))
        if code is None:
            raise DataError(
                f"The level {r_number(values[row])} was not seen when the model was fitted; give rows "
                "with one of its levels."
            )
        codes[row] = code
    return Factor(codes, list(levels), [r_number(v) for v in levels])


def poly_basis(x: np.ndarray, degree: int, coefs=None):
    """R's ``poly(x, degree)``: orthogonal polynomials, and the coefficients that rebuild them.

    Fitted as R fits them (a QR decomposition of the centred powers); with ``coefs`` (``alpha`` and
    ``norm2``, as R's ``predict.poly``), evaluated by the three-term recurrence at new ``x``.

    Returns
    -------
    (ndarray of shape (n, degree), dict)
    """
    x = np.asarray(x, dtype=float)
    if coefs is None:
        finite = x[~np.isnan(x)]
        if len(np.unique(finite)) <= degree:
            raise DataError(
                f"poly() of degree {degree} needs more than {degree} distinct values; the variable "
                f"has {len(np.unique(finite))}. Lower the degree."
            )
        mean = float(finite.mean())
        centred = finite - mean
        powers = centred[:, None] ** np.arange(degree + 1)
        q, r = np.linalg.qr(powers)
        z = q * np.diag(r)
        norm2 = (z * z).sum(axis=0)
        alpha = ((centred[:, None] * z * z).sum(axis=0) / norm2 + mean)[:degree]
        coefs = {"alpha": alpha, "norm2": np.r_[1.0, norm2]}
    alpha, norm2 = coefs["alpha"], coefs["norm2"]
    z = np.ones((len(x), degree + 1))
    z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        z[:, i + 1] = (x - alpha[i]) * z[:, i] - (norm2[i + 1] / norm2[i]) * z[:, i - 1]
    return z[:, 1:] / np.sqrt(norm2[2:]), coefs


def contr_poly(n: int) -> tuple[np.ndarray, list]:
    """R's ``contr.poly(n)``: the contrast matrix and its column names (``.L``, ``.Q``, ``.C``, ``^4``).

    Examples
    --------
    >>> m, names = contr_poly(3)
    >>> names, (m.round(6) + 0.0).tolist()
    (['.L', '.Q'], [[-0.707107, 0.408248], [0.0, -0.816497], [0.707107, 0.408248]])
    """
    scores = np.arange(1.0, n + 1)
    centred = scores - scores.mean()
    q, r = np.linalg.qr(centred[:, None] ** np.arange(n))
    z = q * np.diag(r)
    z = z / np.sqrt((z * z).sum(axis=0))
    names = [".L", ".Q", ".C"] + [f"^{k}" for k in range(4, n)]
    return z[:, 1:], names[: n - 1]


class ModelSpec:
    """A parsed formula with everything learned from the data (levels, scale and poly coefficients),
    so the same model columns can be built for new rows.

    Attributes
    ----------
    formula : Formula
    column_names : list of str
        The fixed-effect names (see the module notes).
    reference_levels : dict
        Factor label -> its reference (first) level, for each factor coded by treatment contrasts.
    required_variables : set of str
        The data columns the fixed-effect terms need.
    encoder_state : dict
        Column -> ``("categorical", {"categories": [...]})`` for each plain factor column.
    """

    def __init__(self, formula: Formula):
        self.formula = formula
        self.state: dict = {}
        self.levels: dict = {}
        self.codings: list = []
        self.column_names: list = []
        self.column_numeric: list = []
        self.reference_levels: dict = {}

    # -- values
    def _column(self, data: pd.DataFrame, name: str) -> pd.Series:
        from .validate import check_present

        check_present([name], data.columns)
        return data[name]

    def _numbers(self, data: pd.DataFrame, name: str, context: str) -> np.ndarray:
        values = self._column(data, name)
        if is_categorical(values) and not _is_bool(values):
            raise DataError(
                f"Column {name!r} is not numeric (type {values.dtype}), so {context} cannot be "
                "computed; use a numeric column there."
            )
        return values.to_numpy(dtype=float, na_value=np.nan)

    def _value(self, node, data: pd.DataFrame, context: str):
        """A numeric value (float array, or a scalar for a constant)."""
        if isinstance(node, Name):
            return self._numbers(data, node.id, context)
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Paren):
            return self._value(node.inner, data, context)
        if isinstance(node, Unary):
            value = self._value(node.operand, data, context)
            return -value if node.op == "-" else value
        if isinstance(node, Binary):
            left = self._value(node.left, data, context)
            right = self._value(node.right, data, context)
            with np.errstate(all="ignore"):
                if node.op == "+":
                    return left + right
                if node.op == "-":
                    return left - right
                if node.op == "*":
                    return left * right
                if node.op == "/":
                    return np.true_divide(left, right)
                return np.power(np.asarray(left, dtype=float), right)
        if isinstance(node, Call):
            return self._call(node, data, context)
        raise TypeError(node)  # pragma: no cover

    def _call(self, node: Call, data: pd.DataFrame, context: str):
        label = deparse(node)
        inner = np.asarray(self._value(node.args[0], data, context), dtype=float)
        if inner.ndim == 0:
            inner = np.full(len(data), float(inner))
        if node.func in _ELEMENTWISE:
            with np.errstate(all="ignore"):
                return _ELEMENTWISE[node.func](inner)
        if node.func == "I":
            return inner
        kwargs = dict(node.kwargs)
        if node.func == "center":
            if label not in self.state:
                self.state[label] = {"center": _mean(inner)}
            return inner - self.state[label]["center"]
        if node.func == "scale":
            if label not in self.state:
                center_arg = node.args[1] if len(node.args) > 1 else kwargs.get("center")
                scale_arg = node.args[2] if len(node.args) > 2 else kwargs.get("scale")
                center = _scale_setting(center_arg, lambda: _mean(inner), 0.0)
                scale = _scale_setting(scale_arg, lambda: _rms(inner - center), 1.0)
                self.state[label] = {"center": center, "scale": scale}
            state = self.state[label]
            with np.errstate(all="ignore"):
                return (inner - state["center"]) / state["scale"]
        if node.func == "poly":
            degree = int(_constant(node.args[1] if len(node.args) > 1 else kwargs["degree"]))
            basis, coefs = poly_basis(inner, degree, self.state.get(label))
            self.state[label] = coefs
            return basis
        raise TypeError(node.func)  # pragma: no cover

    def _factor(self, var: Variable, data: pd.DataFrame) -> Factor | None:
        """The variable as a factor, or None when it is numeric."""
        node = var.node
        known = self.levels.get(var.label)
        if isinstance(node, Name):
            values = self._column(data, node.id)
            if not is_categorical(values):
                return None
            return _factor_of_series(values, None if known is None else known[0])
        if isinstance(node, Call) and node.func in ("factor", "C"):
            arg = node.args[0]
            if isinstance(arg, Name) and is_categorical(self._column(data, arg.id)):
                return _factor_of_series(data[arg.id], None if known is None else known[0])
            numbers = np.asarray(self._value(arg, data, var.label), dtype=float)
            return _factor_of_numbers(numbers, None if known is None else known[0])
        return None

    def values(self, data: pd.DataFrame) -> dict:
        """Each fixed-effect variable's values on the rows of ``data``: a Factor or a float array."""
        out = {}
        for var in self.formula.predictors:
            factor = self._factor(var, data)
            if factor is not None:
                out[var.label] = factor
                continue
            value = np.asarray(self._value(var.node, data, var.label), dtype=float)
            if value.ndim == 0:
                value = np.full(len(data), float(value))
            out[var.label] = value
        return out

    def response(self, data: pd.DataFrame) -> np.ndarray:
        """The response minus the offsets, on the rows of ``data``."""
        var = self.formula.response
        y = np.asarray(self._value(var.node, data, var.label), dtype=float)
        if y.ndim != 1:
            raise DataError(f"The response {var.label!r} is not a single numeric column.")
        for offset in self.formula.offsets:
            value = np.asarray(self._value(offset.node, data, offset.label), dtype=float)
            with np.errstate(all="ignore"):
                y = y - value
        return y

    # -- the model matrix
    def learn(self, values: dict, keep: np.ndarray) -> dict:
        """Fix the levels from the rows kept (unused levels dropped, as lme4 does) and the codings."""
        out = {}
        for label, value in values.items():
            if isinstance(value, Factor):
                used = np.bincount(
                    value.codes[keep & (value.codes >= 0)], minlength=len(value.levels)
                )
                present = [k for k in range(len(value.levels)) if used[k] > 0]
                if len(present) < 2:
                    shown = ", ".join(repr(value.names[k]) for k in present) or "none"
                    raise DataError(
                        f"The factor {label!r} has {len(present)} level(s) in the rows used ({shown}); "
                        "a factor needs at least 2. Drop it from the formula or check its column."
                    )
                self.levels[label] = (
                    [value.levels[k] for k in present],
                    [value.names[k] for k in present],
                    value.ordered,
                )
                remap = np.full(len(value.levels) + 1, -1, dtype=np.int64)
                remap[present] = np.arange(len(present))
                codes = remap[np.where(value.codes >= 0, value.codes, len(value.levels))]
                out[label] = Factor(
                    codes, self.levels[label][0], self.levels[label][1], value.ordered
                )
            else:
                out[label] = value
        self._codings(out)
        return out

    def _codings(self, values: dict) -> None:
        """R's rule: a factor in a term is coded by contrasts when the term without it is in the model
        (the empty term always counts), else by indicators; without an intercept, the first factor of
        the first term that has one is coded by indicators."""
        terms = self.formula.terms
        codings = []
        for k, term in enumerate(terms):
            coding = {}
            for label in term:
                if not isinstance(values[label], Factor):
                    continue
                margin = set(term) - {label}
                contrast = not margin or any(margin <= set(terms[j]) for j in range(k))
                coding[label] = "contrast" if contrast else "full"
            codings.append(coding)
        if not self.formula.intercept:
            for coding, term in zip(codings, terms, strict=True):
                first = next((label for label in term if label in coding), None)
                if first is not None:
                    coding[first] = "full"
                    break
        self.codings = codings
        names, numeric = [], []
        if self.formula.intercept:
            names.append("Intercept")
            numeric.append(())
        for term, coding in zip(terms, codings, strict=True):
            term_names, term_numeric = [""], [()]
            for label in term:
                block_names, is_numeric = self._block_names(label, values[label], coding.get(label))
                term_names = [
                    (old + ":" if old else "") + new for new in block_names for old in term_names
                ]
                term_numeric = [
                    old + ((label,) if is_numeric else ())
                    for _ in block_names
                    for old in term_numeric
                ]
            names += term_names
            numeric += term_numeric
        self.column_names = names
        self.column_numeric = numeric
        self.reference_levels = {
            label: self.levels[label][1][0]
            for coding in codings
            for label, kind in coding.items()
            if kind == "contrast" and not self.levels[label][2]
        }

    def _block_names(self, label: str, value, coding) -> tuple[list, bool]:
        if isinstance(value, Factor):
            names = self.levels[label][1]
            if coding == "full":
                return [f"{label}[{n}]" for n in names], False
            if self.levels[label][2]:
                return [f"{label}[{n}]" for n in contr_poly(len(names))[1]], False
            return [f"{label}[T.{n}]" for n in names[1:]], False
        if np.ndim(value) == 2:
            return [f"{label}{k + 1}" for k in range(value.shape[1])], True
        return [label], True

    def _block(self, label: str, value, coding) -> np.ndarray:
        if isinstance(value, Factor):
            n = len(self.levels[label][0])
            indicator = np.zeros((len(value.codes), n))
            indicator[np.arange(len(value.codes)), value.codes] = 1.0
            if coding == "full":
                return indicator
            if self.levels[label][2]:
                return indicator @ contr_poly(n)[0]
            return indicator[:, 1:]
        return value.reshape(len(value), -1)

    def matrix(self, values: dict, n_rows: int, unit_numeric: bool = False) -> np.ndarray:
        """The model matrix from :meth:`values` (after :meth:`learn`). With ``unit_numeric``, every
        numeric variable counts as 1 (the indicator part of each column, as the file path needs)."""
        blocks = [np.ones((n_rows, 1))] if self.formula.intercept else []
        for term, coding in zip(self.formula.terms, self.codings, strict=True):
            current = np.ones((n_rows, 1))
            for label in term:
                value = values[label]
                if unit_numeric and not isinstance(value, Factor):
                    block = np.ones((n_rows, 1))
                else:
                    block = self._block(label, value, coding.get(label))
                current = (current[:, None, :] * block[:, :, None]).reshape(n_rows, -1)
            blocks.append(current)
        if not blocks:
            return np.zeros((n_rows, 0))
        return np.hstack(blocks)

    # -- the interface of a model spec, for predictions on new rows
    @property
    def required_variables(self) -> set:
        return {c for var in self.formula.predictors for c in var.columns}

    @property
    def offset_variables(self) -> set:
        """The data columns the ``offset()`` terms need."""
        return {c for var in self.formula.offsets for c in var.columns}

    def offset(self, data: pd.DataFrame) -> np.ndarray:
        """The sum of the formula's ``offset()`` terms on the rows of ``data`` (zeros without any)."""
        total = np.zeros(len(data))
        for offset in self.formula.offsets:
            value = np.asarray(self._value(offset.node, data, offset.label), dtype=float)
            with np.errstate(all="ignore"):
                total = total + value
        return total

    @property
    def encoder_state(self) -> dict:
        out = {}
        for var in self.formula.predictors:
            if isinstance(var.node, Name) and var.label in self.levels:
                out[var.label] = ("categorical", {"categories": list(self.levels[var.label][0])})
        return out

    def get_model_matrix(self, data: pd.DataFrame) -> pd.DataFrame:
        """The fixed-effect columns for new rows, with the levels and coefficients of the fit."""
        values = self.values(data)
        for label, value in values.items():
            if isinstance(value, Factor) and (value.codes < 0).any():
                raise DataError(f"The factor {label!r} has missing values in the new rows.")
        matrix = self.matrix(values, len(data))
        return pd.DataFrame(matrix, index=data.index, columns=self.column_names)


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _rms(values: np.ndarray) -> float:
    """R's scale(): sqrt(sum(x^2) / (n - 1)) over the non-missing values (the SD when centred)."""
    finite = values[~np.isnan(values)]
    return float(np.sqrt((finite * finite).sum() / max(1, len(finite) - 1)))


def _scale_setting(node, default, off: float) -> float:
    if node is None:
        return default()
    flag = _flag(node)
    if flag is not None:
        return default() if flag else off
    return float(_constant(node))


def _split_interaction(name: str) -> list[str]:
    """Split a column name at the ':' of interactions, not at one inside brackets or parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


def r_term_name(name: str) -> str:
    """Translate a term name of this package to the one R prints.

    The package names a factor's columns ``arm[T.b]`` (treatment contrast), ``arm[b]`` (full
    indicator coding) or ``dose[.L]`` (polynomial contrast of an ordered factor); R writes the level or
    contrast straight after the variable. Logical columns have the levels ``FALSE`` and ``TRUE``.

    Examples
    --------
    >>> r_term_name("Intercept"), r_term_name("condition[T.stim]")
    ('(Intercept)', 'conditionstim')
    >>> r_term_name("Diet[1]"), r_term_name("factor(Occasion)[T.2]:x"), r_term_name("dose[.L]")
    ('Diet1', 'factor(Occasion)2:x', 'dose.L')
    >>> r_term_name("b[T.True]"), r_term_name("poly(age, 2)1")
    ('bTRUE', 'poly(age, 2)1')
    """
    if name == "Intercept":
        return "(Intercept)"
    out = []
    for part in _split_interaction(name):
        if part.endswith("]") and "[" in part:
            var, level = part[:-1].rsplit("[", 1)
            if level.startswith("T."):
                level = level[2:]
            level = {"True": "TRUE", "False": "FALSE"}.get(level, level)
            out.append(f"{var}{level}")
        else:
            out.append(part)
    return ":".join(out)


# --- a formula as a model: its fixed part, its grouping column, its random-effects terms ------------

#: The random-effects terms the package fits, for error messages.
RANDOM_TERMS_SUPPORTED = (
    "one grouping factor with any random intercept and slopes for it, e.g. '(1 | g)', '(1 + x | g)', "
    "'(x || g)' or '(1 | g) + (0 + x | g)'"
)


def check_bars(bars, group: str | None = None) -> str | None:
    """The one grouping column of the random-effects terms, or a :class:`DataError`.

    Parameters
    ----------
    bars : sequence of helpers.formula.Bar
    group : str, optional
        A grouping column given separately (``fit_lmm(..., group=...)``).

    Examples
    --------
    >>> from helpers.formula import parse
    >>> check_bars(parse("y ~ x + (1 | g) + (0 + x | g)").bars)
    'g'
    >>> check_bars(parse("y ~ x + (1 | a) + (1 | b)").bars)
    Traceback (most recent call last):
    ...
    helpers.validate.DataError: The formula has random-effects terms for 2 grouping factors ('a', 'b'); crossed groupings are not supported: this package fits one grouping factor with any random intercept and slopes for it, e.g. '(1 | g)', '(1 + x | g)', '(x || g)' or '(1 | g) + (0 + x | g)'.
    """
    groups: list[str] = []
    for bar in bars:
        if bar.nested:
            raise DataError(
                f"The random-effects term '{bar.text}' has a nested or crossed grouping "
                f"('{bar.group}'); this package fits {RANDOM_TERMS_SUPPORTED}. Make one grouping column (for "
                "example the combination of the two) if that is the model you mean."
            )
        if bar.group not in groups:
            groups.append(bar.group)
    if len(groups) > 1:
        shown = ", ".join(repr(g) for g in groups)
        raise DataError(
            f"The formula has random-effects terms for {len(groups)} grouping factors ({shown}); "
            f"crossed groupings are not supported: this package fits {RANDOM_TERMS_SUPPORTED}."
        )
    check_one_group(groups[0] if groups else None, group)
    return groups[0] if groups else group


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into its fixed-effects part and its grouping column.

    Attributes
    ----------
    fixed : str
        The fixed-effects formula, for example ``"pSHP2 ~ condition"``.
    group : str or None
        The grouping column of the random intercept, or None for a model without one.
    response : str
        The response as R labels it (a column name without backticks, or ``log(y)``).
    model : helpers.formula.Formula
        The parsed formula: its variables, terms, offsets and random-effects terms.
    """

    fixed: str
    group: str | None
    response: str
    model: object = field(default=None, repr=False, compare=False)

    @property
    def bars(self) -> tuple:
        """The random-effects terms, as :class:`helpers.formula.Bar` (terms, group, ``|`` or ``||``)."""
        return self.model.bars if self.model is not None else ()


def parse_formula(
    formula: str, group: str | None = None, *, random_slopes: bool = False
) -> ParsedFormula:
    """Parse an lme4-style formula into its fixed-effects part and its grouping column.

    Every formula goes through :func:`helpers.formula.parse`, which accepts only column names, numbers,
    R's formula operators and the supported functions, and refuses anything else before any value is
    computed (a formula is data; it never runs code).

    Parameters
    ----------
    formula : str
        Either a fixed-effects formula (``"y ~ x"``), used with ``group``, or an lme4-style formula with one
        random-intercept term (``"y ~ x + (1 | g)"``).
    group : str, optional
        The grouping column, when the formula has no ``(1 | g)`` term.
    random_slopes : bool, default False
        Accept any random-effects terms of one grouping factor (random slopes, ``||``, several terms;
        :func:`check_bars`), as :func:`helpers.fit.fit_lmm` does.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    DataError
        For anything the parser does not support, random slopes, several grouping factors, nested or
        crossed terms, or a formula without ``~``.

    Examples
    --------
    >>> parse_formula("pSHP2 ~ condition + (1 | cluster)")
    ParsedFormula(fixed='pSHP2 ~ condition', group='cluster', response='pSHP2')
    >>> parse_formula("y ~ x", group="g").group
    'g'
    >>> parse_formula("y ~ x + (1 | `site (id)`)").group
    'site (id)'
    """
    model = parse(formula)
    if random_slopes:  # any random terms of one grouping factor (helpers.random_terms)
        return ParsedFormula(
            fixed=model.fixed_text,
            group=check_bars(model.bars, group),
            response=model.response.label,
            model=model,
        )
    groups = []
    for bar in model.bars:
        if bar.double or bar.terms or not bar.intercept:
            raise DataError(
                f"The random-effects term '{bar.text}' is not supported: this package fits one random "
                "intercept, written '(1 | group)'. Remove random slopes such as '(x | g)' or '(1 + x | g)'."
            )
        if bar.nested:
            raise DataError(
                f"The random-effects term '{bar.text}' has a nested or crossed grouping; only one "
                "grouping column is supported, written '(1 | group)'."
            )
        groups.append(bar.group)
    if len(groups) > 1:
        raise DataError(
            f"The formula has {len(groups)} random-effects terms ({', '.join(groups)}); only one grouping "
            "factor is supported. Keep a single '(1 | group)' term."
        )
    check_one_group(groups[0] if groups else None, group)
    group_name = groups[0] if groups else group
    return ParsedFormula(
        fixed=model.fixed_text, group=group_name, response=model.response.label, model=model
    )
