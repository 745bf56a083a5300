"""Read the IR text that :func:`s4tf_py.ir.printer.print_function` writes back into a Function.

The grammar (whitespace and line breaks between tokens are free; the printer puts one
statement per line)::

    function := 'func' '@'NAME '(' [%v ':' TYPE, ...] ')' '->' '(' [TYPE, ...] ')' '{'
                    equation*
                    'return' [%v, ...]
                '}'
    equation := %v [, %v ...] '=' PRIM '(' [%v, ...] ')' ['{' key '=' VALUE, ... '}'] ':' TYPES
    TYPES    := TYPE | '(' [TYPE, ...] ')'                 (a multiple-result equation)
    TYPE     := DTYPE '[' [INT, ...] ']' ['~']             f32[2,3], i1[], f32[]~ (weak scalar)
    VALUE    := a Python literal (int, float, str, True/False/None, tuples of values)
              | inf | nan | -inf | a dtype short name (f32, bf16, i1 ...)
              | function                                 (a nested Region: cond/scan/while bodies)

Value names are free-form (``%0``, ``%x``) and local to their function; the printer numbers
them in order. Params are read token by token and nothing is evaluated (a string literal is
decoded with :func:`ast.literal_eval`, which evaluates no code), so params come back with the
exact Python types the printer started from: tuples stay tuples, ``1`` stays an int, ``1.0`` a
float, ``-0.0`` keeps its sign; ``nan`` reads as the singleton :data:`math.nan`.

A primitive with a custom ``printer`` slot round-trips only if it also puts a
``parse_params(text) -> tuple of (name, value)`` callable in its ``extra`` dict (it receives the
text between the braces); otherwise its params text must use the default ``{k=v, ...}`` form.

Every error is an :class:`s4tf_py.errors.IRError` that names the line number, what was
expected and what was found, and quotes the line. :func:`parse` checks the text's
well-formedness (syntax, SSA naming, result arity, known primitives and dtypes, return types
against the signature); pass ``verify=True`` to also check every equation's types against its
shape rule (:func:`s4tf_py.ir.verifier.verify`).

Example:
    >>> from s4tf_py.ir.parser import parse
    >>> fn = parse('''
    ... func @f(%0: f32[2,2]) -> (f32[]) {
    ...   %1 = mul(%0, %0) : f32[2,2]
    ...   %2 = reduce_sum(%1) {axes=(0, 1)} : f32[]
    ...   return %2
    ... }''')
    >>> [e.prim.name for e in fn.eqns]
    ['mul', 'reduce_sum']
"""
from __future__ import annotations

import ast
import bisect
import math
import re

from .. import dtypes as dt
from ..errors import IRError
from .function import Eqn, Function, Var
from .registry import REGISTRY, AVal, type_str

__all__ = ["parse", "parse_type", "parse_params"]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<val>%[A-Za-z0-9_.$]+)
  | (?P<at>@[^\s(){}\[\],:=]*)
  | (?P<arrow>->)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[(){}\[\],=:~+-])
""", re.VERBOSE)

#: the bare names a param value may use (besides the dtype short names and nested functions)
_NAMES: dict = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}

_HEADER_HINT = "a function header `func @name(%0: f32[2], ...) -> (types) {`"


class _Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind, text, pos):
        self.kind, self.text, self.pos = kind, text, pos

    def __repr__(self):
        return repr(self.text) if self.kind != "eof" else "the end of the text"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                self.i = 0
                raise self.error(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                self.toks.append(_Tok(m.lastgroup, m.group(), pos))
            pos = m.end()
        self.toks.append(_Tok("eof", "", len(text)))
        self.i = 0

    # ---- errors and token access -------------------------------------------------------------

    def lineno(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos)

    def error(self, message: str, pos: int | None = None, mid: bool = True) -> IRError:
        """An IRError at ``pos`` (default: the current token). ``mid``: the current token was
        expected to continue the statement on the previous token's line."""
        if pos is None:
            cur = self.peek()
            pos = cur.pos
            if self.i > 0:
                prev = self.toks[self.i - 1]
                if cur.kind == "eof" or (mid and self.lineno(cur.pos) > self.lineno(prev.pos)):
                    # the statement stopped short: point at its line, not at the next one
                    if cur.kind != "eof":
                        message = message.replace(f"got {cur!r}", "got the end of the line")
                    pos = prev.pos
        ln = self.lineno(pos)
        lines = self.text.split("\n")
        line = lines[ln - 1].rstrip() if 0 < ln <= len(lines) else ""
        return IRError(f"IR parse error, line {ln}: {message}\n  {ln:4d} | {line}")

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def at(self, text: str, kind: str | None = None) -> bool:
        t = self.peek()
        return t.text == text and (kind is None or t.kind == kind)

    def expect(self, text: str, what: str | None = None) -> _Tok:
        t = self.peek()
        if t.text != text or t.kind in ("str", "eof"):
            raise self.error(f"expected {what or repr(text)}, got {t!r}")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> _Tok:
        t = self.peek()
        if t.kind != kind:
            raise self.error(f"expected {what}, got {t!r}")
        return self.next()

    # ---- types ---------------------------------------------------------------------------------

    def type_(self) -> AVal:
        t = self.peek()
        if t.kind != "name":
            raise self.error(f"expected a type such as f32[2,3] or f32[]~, got {t!r}")
        if t.text not in dt.FROM_SHORT_NAME:
            known = ", ".join(sorted(dt.FROM_SHORT_NAME))
            raise self.error(f"unknown dtype {t.text!r} (known: {known})")
        self.next()
        self.expect("[", f"'[' after the dtype {t.text}")
        dims: list[int] = []
        if not self.at("]"):
            while True:
                d = self.peek()
                if d.kind != "num" or not d.text.isdigit():
                    raise self.error(f"expected a non-negative integer dimension, got {d!r}")
                dims.append(int(self.next().text))
                if self.at("]"):
                    break
                self.expect(",", "',' or ']' in the dimensions")
        self.next()
        weak = False
        if self.at("~", "punct"):
            self.next()
            weak = True
        return AVal(tuple(dims), dt.FROM_SHORT_NAME[t.text], weak)

    def type_list(self) -> list[AVal]:
        """``(T, T, ...)`` including the parentheses."""
        self.expect("(")
        out: list[AVal] = []
        if self.at(")"):
            self.next()
            return out
        while True:
            out.append(self.type_())
            if self.at(")"):
                self.next()
                return out
            self.expect(",", "',' or ')' in the type list")

    # ---- param values ---------------------------------------------------------------------------

    def value(self, key: str):
        t = self.peek()
        if t.kind == "num":
            self.next()
            return _number(t.text)
        if t.kind == "str":
            self.next()
            return ast.literal_eval(t.text)       # a lone string literal: nothing is evaluated
        if t.kind == "punct" and t.text in "+-":
            self.next()
            v = self.peek()
            if v.kind == "num":
                x = _number(self.next().text)
            elif v.kind == "name" and v.text in ("inf", "nan"):
                x = _NAMES[self.next().text]
            else:
                raise self.error(f"param {key}: a sign applies to numbers only, got {v!r}")
            return -x if t.text == "-" else x
        if t.kind == "punct" and t.text == "(":
            self.next()
            items, trailing = [], False
            while not self.at(")"):
                items.append(self.value(key))
                trailing = False
                if self.at(","):
                    self.next()
                    trailing = True
                elif not self.at(")"):
                    raise self.error(f"param {key}: expected ',' or ')' in a tuple, got "
                                     f"{self.peek()!r}")
            self.next()
            if len(items) == 1 and not trailing:
                return items[0]                    # (x) is x, as in Python
            return tuple(items)
        if t.kind == "name":
            if t.text == "func":
                from .region import Region
                return Region(self.function())
            if t.text in _NAMES:
                self.next()
                return _NAMES[t.text]
            if t.text in dt.FROM_SHORT_NAME:
                self.next()
                return dt.FROM_SHORT_NAME[t.text]
            raise self.error(f"param {key}: unknown name {t.text!r} (expected a literal, inf, nan, "
                             "a dtype short name such as f32, or a nested func)")
        raise self.error(f"param {key}: expected a literal (number, string, bool, None, tuple, "
                         f"inf, nan, a dtype or a nested func), got {t!r}")

    def params(self, prim) -> tuple:
        open_ = self.expect("{")
        if prim.printer is not None and "parse_params" in prim.extra:
            depth, j = 1, self.i
            while depth:
                t = self.toks[j]
                if t.kind == "eof":
                    raise self.error("unbalanced '{' in params", open_.pos)
                if t.kind == "punct" and t.text in "{}":
                    depth += 1 if t.text == "{" else -1
                j += 1
            inner = self.text[open_.pos + 1:self.toks[j - 1].pos]
            self.i = j
            try:
                return tuple(prim.extra["parse_params"](inner))
            except Exception as e:  # noqa: BLE001 - a primitive's own params parser
                raise self.error(f"{prim.name} params: {e}", open_.pos) from None
        out, seen = [], set()
        if self.at("}"):
            self.next()
            return ()
        while True:
            k = self.peek()
            if k.kind != "name":
                raise self.error(f"expected params as {{name=literal, ...}}, got {k!r}")
            self.next()
            if k.text in seen:
                raise self.error(f"param {k.text!r} is given twice", k.pos)
            seen.add(k.text)
            self.expect("=", f"'=' after the param name {k.text}")
            out.append((k.text, self.value(k.text)))
            if self.at("}"):
                self.next()
                return tuple(out)
            self.expect(",", "',' or '}' after a param")

    # ---- functions ------------------------------------------------------------------------------

    def val_list(self, env, what) -> list[Var]:
        """``%a, %b, ...`` (possibly empty) of defined values."""
        out = []
        if self.peek().kind != "val":
            return out
        while True:
            t = self.expect_kind("val", f"a value name such as %3 in the {what}")
            if t.text not in env:
                raise self.error(f"value {t.text} is used before it is defined", t.pos)
            out.append(env[t.text][0])
            if not self.at(","):
                return out
            self.next()

    def function(self) -> Function:
        env: dict[str, tuple[Var, int]] = {}

        def define_(tok, aval):
            if tok.text in env:
                raise self.error(f"value {tok.text} is defined twice (first on line "
                                 f"{env[tok.text][1]}); the IR is SSA", tok.pos)
            v = Var(aval)
            env[tok.text] = (v, self.lineno(tok.pos))
            return v

        if not self.at("func", "name"):
            raise self.error(f"expected {_HEADER_HINT}, got {self.peek()!r}")
        self.next()
        name = self.expect_kind("at", "'@name' after 'func'").text[1:]
        self.expect("(", "'(' opening the parameter list")
        params: list[Var] = []
        if not self.at(")"):
            while True:
                p = self.expect_kind("val", "a parameter `%name: type`")
                self.expect(":", f"':' and a type after the parameter {p.text}")
                params.append(define_(p, self.type_()))
                if self.at(")"):
                    break
                self.expect(",", "',' or ')' in the parameter list")
        self.next()
        self.expect("->", "'->' after the parameters")
        out_types = self.type_list()
        self.expect("{", "'{' opening the function body")
        eqns: list[Eqn] = []
        while True:
            t = self.peek()
            if t.kind == "name" and t.text == "return":
                self.next()
                if self.peek().kind != "val" and not self.at("}"):
                    raise self.error("expected a value name such as %3 in the return list, got "
                                     f"{self.peek()!r}")
                outputs = self.val_list(env, "return list")
                got = [v.aval for v in outputs]
                if got != out_types:
                    raise self.error("the returned values have types (" +
                                     ", ".join(map(type_str, got)) + ") but the signature says (" +
                                     ", ".join(map(type_str, out_types)) + ")", t.pos)
                if not self.at("}"):
                    raise self.error(f"expected '}}' after the return line, got {self.peek()!r}",
                                     mid=False)
                self.next()
                return Function(params, eqns, outputs, name=name)
            if t.kind == "val":
                eqns.append(self.equation(env, define_))
                continue
            if t.kind == "eof":
                raise self.error("the text ended; expected an equation, a `return` line or '}'")
            if t.text == "}":
                raise self.error("expected a `return` line before the closing '}'", mid=False)
            raise self.error("expected an equation `%n = prim(%a, ...) {params} : type` or a "
                             f"`return` line, got {t!r}", mid=False)

    def equation(self, env, define_) -> Eqn:
        lhs = [self.next()]
        while self.at(","):
            self.next()
            lhs.append(self.expect_kind("val", "a result name such as %3"))
        self.expect("=", "'=' after the result names")
        p = self.expect_kind("name", "a primitive name")
        prim = REGISTRY.get(p.text)
        if prim is None:
            raise self.error(f"unknown primitive {p.text!r}", p.pos)
        if p.text == "get_tuple_element":
            raise self.error("get_tuple_element never appears in a Function; name the results "
                             "of the multiple-result equation instead", p.pos)
        self.expect("(", f"'(' after {p.text}")
        ins = self.val_list(env, "operands")
        self.expect(")", "')' closing the operands")
        ps = self.params(prim) if self.at("{", "punct") else ()
        self.expect(":", "' : type' at the end of the equation" if ps else
                    "params in braces {name=value, ...} or ' : type' after the operands")
        ty = self.peek()
        avals = self.type_list() if self.at("(", "punct") else [self.type_()]
        if len(avals) != len(lhs):
            raise self.error(f"{len(lhs)} result name(s) but {len(avals)} result type(s)", ty.pos)
        if not prim.multiple_results and len(lhs) != 1:
            raise self.error(f"{p.text} has one result, got {len(lhs)} result names", ty.pos)
        outs = [define_(n, a) for n, a in zip(lhs, avals)]
        return Eqn(prim, ins, ps, outs)


def _number(text: str):
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


def _guard(fn):
    try:
        return fn()
    except RecursionError:
        raise IRError("IR parse error: the text nests too deeply") from None


def parse(text: str, *, verify: bool = False) -> Function:
    """The :class:`~s4tf_py.ir.Function` that ``text`` (as printed by ``str(fn)``) describes."""
    def go():
        p = _Parser(text)
        if p.peek().kind == "eof":
            raise IRError(f"IR parse error: no function header found; expected {_HEADER_HINT}")
        fn = p.function()
        if p.peek().kind != "eof":
            raise p.error(f"unexpected text after the closing '}}': {p.peek()!r}", mid=False)
        return fn
    fn = _guard(go)
    if verify:
        from .verifier import verify as _verify
        _verify(fn)
    return fn


def parse_type(text: str) -> AVal:
    """``f32[2,3]`` → ``AVal((2, 3), float32)``; ``f32[]~`` is a weak scalar."""
    p = _Parser(text)
    aval = p.type_()
    if p.peek().kind != "eof":
        raise p.error(f"unexpected text after the type: {p.peek()!r}")
    return aval


def parse_params(text: str) -> tuple:
    """``{axes=(0, 1), dtype=f32}`` (braces optional) → ``(("axes", (0, 1)), ("dtype", f32))``."""
    text = text.strip()
    if not text.startswith("{"):
        text = "{" + text + "}"

    class _Plain:                    # the default params syntax, whatever the primitive
        printer = None
        extra: dict = {}
        name = "params"

    def go():
        p = _Parser(text)
        ps = p.params(_Plain)
        if p.peek().kind != "eof":
            raise p.error(f"unexpected text after the params: {p.peek()!r}")
        return ps
    return _guard(go)
