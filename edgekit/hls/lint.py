"""Synthesizability lint for the C++ edgekit hands to an HLS tool.

Checks what makes a C++ function impossible (or unbounded) to turn into hardware: dynamic memory,
recursion, pointers to pointers, function pointers, exceptions, and loops whose trip count is
not a compile-time constant. It reads generated code, whose style is regular, so a light lexer
(comments and strings blanked, braces matched) is enough; it is not a C++ parser, and code
written to dodge it will.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


_DYNAMIC = re.compile(
    r"\b(malloc|calloc|realloc|free|alloca|new|delete)\b\s*[\(\[\w]|"
    r"\bstd::(vector|string|map|unordered_map|list|deque|set|unique_ptr|shared_ptr|"
    r"make_unique|make_shared)\b"
)
_POINTER_TO_POINTER = re.compile(r"\*\s*(?:(?:const|volatile)\s*)*\*")
_FUNCTION_POINTER = re.compile(r"\(\s*\*\s*\w+\s*\)\s*\(")
_EXCEPTIONS = re.compile(r"\b(throw|try|catch)\b")
_UNBOUNDED = re.compile(r"\b(while|do|goto|setjmp|longjmp)\b")
_BREAK = re.compile(r"\bbreak\s*;")
_FOR = re.compile(r"\bfor\s*\(")
_INT_TYPE = r"(?:(?:const|unsigned|signed|long|short|int|char|size_t|u?int(?:8|16|32|64)_t)\s+)*"
_FOR_HEADER = re.compile(
    rf"^\s*{_INT_TYPE}(?P<var>[A-Za-z_]\w*)\s*=\s*(?P<init>[^;]+);"
    r"\s*(?P<cvar>[A-Za-z_]\w*)\s*(?:<=|>=|!=|<|>)\s*(?P<bound>[^;]+);"
    r"\s*(?P<step>.+?)\s*$",
    re.S,
)
_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+(.+)$", re.M)
_CONST_DECL = re.compile(
    r"\b(?:static\s+)?(?:constexpr|const)\s+" + _INT_TYPE + r"([A-Za-z_]\w*)\s*=\s*([^;,{}]+);"
)
# a definition's return type and name sit on one line (bounded matching on huge ROM tables)
_FUNC_DEF = re.compile(
    r"^[ \t]*(?:template[ \t]*<[^>\n]*>[ \t]*)?(?:(?:static|inline|extern|constexpr)[ \t]+)*"
    r"[A-Za-z_][\w:<>,\*& \t]*?\b([A-Za-z_]\w*)[ \t]*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)\s*"
    r"(?:const\s*)?\{",
    re.M,
)
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "else", "do", "catch"}


_NOT_CODE = re.compile(
    r"//[^\n]*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*\"?|'(?:\\.|[^'\\\n])*'?", re.S
)


def _blank(text: str) -> str:
    """Comments and string/char literals replaced by spaces; newlines kept for line numbers."""
    return _NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _code_only(text: str) -> str:
    """Preprocessor lines blanked too: their tokens (pragmas, includes) are not C++ code."""
    return re.sub(r"^[ \t]*#[^\n]*", lambda m: " " * len(m.group(0)), text, flags=re.M)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _matching(text: str, open_pos: int, open_c: str = "{", close_c: str = "}") -> int:
    depth = 0
    for k in range(open_pos, len(text)):
        if text[k] == open_c:
            depth += 1
        elif text[k] == close_c:
            depth -= 1
            if depth == 0:
                return k
    return len(text) - 1


def _constant_names(code: str, raw: str) -> set[str]:
    decls = [m.groups() for m in _DEFINE.finditer(raw)]
    decls += [m.groups() for m in _CONST_DECL.finditer(code)]
    names: set[str] = set()
    for _ in range(3):  # constants defined from constants
        names |= {name for name, expr in decls if _is_constant(expr, names)}
    return names


_CONST_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|[-+*/%()<>&|^~])[uUlL]*")


def _is_constant(expr: str, names: set[str]) -> bool:
    """An integer expression of literals, known constants and arithmetic operators."""
    expr = expr.strip()
    pos = 0
    if not expr:
        return False
    while pos < len(expr):
        m = _CONST_TOKEN.match(expr, pos)
        if not m:
            return False
        tok = m.group(1)
        if (tok[0].isalpha() or tok[0] == "_") and tok not in names:
            return False
        pos = m.end()
    return True


def _for_loops(file: str, code: str, constants: set[str]) -> list[Issue]:
    issues = []
    for m in _FOR.finditer(code):
        open_paren = m.end() - 1
        close_paren = _matching(code, open_paren, "(", ")")
        header = code[open_paren + 1 : close_paren]
        line = _line(code, m.start())
        h = _FOR_HEADER.match(header)
        if not h or h.group("var") != h.group("cvar"):
            issues.append(Issue(file, line, "loop-bound",
                                f"for ({' '.join(header.split())}) is not 'var = constant; var "
                                "compared with a constant; constant step'"))
            continue
        var = h.group("var")
        step = h.group("step").replace(" ", "")
        step_ok = step in (f"++{var}", f"{var}++", f"--{var}", f"{var}--") or (
            re.fullmatch(rf"{var}[+-]=(.+)", step) is not None
            and _is_constant(step.split("=", 1)[1], constants)
        )
        if not (
            _is_constant(h.group("init"), constants)
            and _is_constant(h.group("bound"), constants)
            and step_ok
        ):
            issues.append(Issue(file, line, "loop-bound",
                                f"loop over '{var}' has no constant trip count: "
                                f"for ({' '.join(header.split())})"))
            continue
        body_start = close_paren + 1
        while body_start < len(code) and code[body_start].isspace():
            body_start += 1
        if body_start < len(code) and code[body_start] == "{":
            body = code[body_start : _matching(code, body_start) + 1]
        else:
            body = code[body_start : code.find(";", body_start) + 1]
        writes = re.compile(
            rf"(?<![\w.])(?:\+\+|--)\s*{var}\b|\b{var}\s*(?:\+\+|--|[-+*/%&|^]?=(?!=))"
        )
        if writes.search(body):
            issues.append(Issue(file, line, "loop-bound",
                                f"the body of the loop over '{var}' changes '{var}'"))
    return issues


def _recursion(file: str, code: str) -> list[Issue]:
    bodies: dict[str, tuple[int, str]] = {}
    for m in _FUNC_DEF.finditer(code):
        name = m.group(1)
        if name in _KEYWORDS:
            continue
        start = m.end() - 1
        bodies[name] = (_line(code, m.start(1)), code[start : _matching(code, start) + 1])
    calls = {
        name: {c for c in _CALL.findall(body) if c in bodies} for name, (_, body) in bodies.items()
    }
    issues = []
    for name in sorted(bodies):
        seen: set[str] = set()
        stack = list(calls[name])
        while stack:
            callee = stack.pop()
            if callee == name:
                issues.append(Issue(file, bodies[name][0], "recursion",
                                    f"'{name}' calls itself (directly or through other functions)"))
                break
            if callee not in seen:
                seen.add(callee)
                stack.extend(calls.get(callee, ()))
    return issues


def lint_source(text: str, file: str = "<source>") -> list[Issue]:
    """Every synthesizability problem found in one C++ source."""
    raw = _blank(text)
    code = _code_only(raw)
    issues: list[Issue] = []
    rules = (
        (_DYNAMIC, "dynamic-memory", "dynamic memory has no hardware equivalent: use arrays"),
        (_POINTER_TO_POINTER, "pointer-to-pointer", "pointers to pointers cannot be synthesised"),
        (_FUNCTION_POINTER, "function-pointer", "function pointers cannot be synthesised"),
        (_EXCEPTIONS, "exceptions", "exceptions cannot be synthesised"),
        (_UNBOUNDED, "unbounded-loop",
         "only for loops with a constant trip count are allowed (no while, do, goto)"),
        (_BREAK, "loop-exit", "break makes a loop's trip count depend on data"),
    )
    for pattern, rule, message in rules:
        for m in pattern.finditer(code):
            issues.append(Issue(file, _line(code, m.start()), rule, f"{message} ('{m.group(0)}')"))
    issues += _for_loops(file, code, _constant_names(code, raw))
    issues += _recursion(file, code)
    return sorted(issues, key=lambda i: (i.file, i.line, i.rule))


def lint_sources(files: dict[str, str]) -> list[Issue]:
    """Lint several files; constants are not shared between them (generated loops use literals)."""
    out: list[Issue] = []
    for name in sorted(files):
        out += lint_source(files[name], name)
    return out
