"""Questions that end in ``?`` reach the line magic: ``df = %nl2sql How many orders were cancelled?``.

IPython reads a line whose last token is ``?`` as a help request (``HelpEnd`` in
:mod:`IPython.core.inputtransformer2`, a token-stage transformer), so without help the question above prints
"Object `cancelled` not found." and assigns nothing.  :func:`keep_question_marks` is a *cleanup* transformer: it runs
before the token stage and turns exactly the lines that start (after an optional ``name =``) with ``%nl2sql`` and end
in ``?`` into the call IPython itself would have made for the magic, ``get_ipython().run_line_magic('nl2sql', ...)``.

Left alone: ``%nl2sql?`` and ``%nl2sql??`` (help on the magic), a ``%nl2sql`` inside a string or any other
expression or after another magic, and every cell that starts with a cell magic (its body is not Python).
:func:`register` / :func:`unregister` add it to and remove it from ``shell.input_transformers_cleanup`` (called by
``%load_ext`` / ``%unload_ext``).
"""

from __future__ import annotations

import tokenize
from typing import Any

from IPython.core.inputtransformer2 import assemble_continued_line, find_end_of_continued_line, make_tokens_by_line

#: The line magic whose questions keep their question mark.
MAGIC = "nl2sql"

_SKIP = {tokenize.INDENT, tokenize.DEDENT}
_ENDS = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER}


def _assignment_end(tokens: list[tokenize.TokenInfo]) -> int | None:
    """Index of the first ``=`` outside brackets (the end of an assignment's targets), as IPython's MagicAssign."""
    depth = 0
    for ix, token in enumerate(tokens):
        if token.type != tokenize.OP:
            continue
        if token.string in ("(", "[", "{"):
            depth += 1
        elif token.string in (")", "]", "}"):
            depth -= 1
        elif token.string == "=" and depth == 0:
            return ix
    return None


def _is_magic(tokens: list[tokenize.TokenInfo], ix: int) -> bool:
    """Whether ``tokens[ix:]`` starts with ``%nl2sql`` (no space between the two)."""
    return (ix + 1 < len(tokens) and tokens[ix].string == "%" and tokens[ix + 1].string == MAGIC
            and tokens[ix + 1].start == tokens[ix].end)


def _magic_start(tokens: list[tokenize.TokenInfo]) -> tuple[int, int] | None:
    """``(row, col)`` (0-based row) of the ``%`` of ``%nl2sql`` when a logical line is ``[target =] %nl2sql ...``."""
    ix = 0
    while ix < len(tokens) and tokens[ix].type in _SKIP:
        ix += 1
    if not _is_magic(tokens, ix):
        assign = _assignment_end(tokens)
        first = tokens[ix] if ix < len(tokens) else None  # a target: a name, or a tuple or list of them
        if (assign is None or first is None or not (first.type == tokenize.NAME or first.string in ("(", "["))
                or not _is_magic(tokens, assign + 1)):
            return None
        ix = assign + 1
    return tokens[ix].start[0] - 1, tokens[ix].start[1]


def keep_question_marks(lines: list[str]) -> list[str]:
    """The cell's lines with each ``[target =] %nl2sql question?`` line turned into its magic call.

    >>> keep_question_marks(["df = %nl2sql How many orders were cancelled?\\n"])
    ["df = get_ipython().run_line_magic('nl2sql', 'How many orders were cancelled?')\\n"]
    >>> keep_question_marks(["%nl2sql?\\n"]), keep_question_marks(["x = '%nl2sql a?'\\n"])
    (['%nl2sql?\\n'], ["x = '%nl2sql a?'\\n"])
    """
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines
    edits = []
    for tokens in make_tokens_by_line(lines):
        start = _magic_start(tokens)
        if start is None:
            continue
        row, col = start
        end = find_end_of_continued_line(lines, row)  # ``\\`` at a line's end continues it, as for any magic
        if any(t.start[0] - 1 > end or t.end[0] - 1 > end for t in tokens if t.type not in _SKIP | _ENDS):
            continue  # the logical line goes on past the magic's (an open bracket): leave it to IPython
        rest = assemble_continued_line(lines, (row, col), end)[1 + len(MAGIC):]
        args = rest.strip()
        if not rest[:1].isspace() or not args.endswith("?") or not args.rstrip("?").strip():
            continue  # not this magic's line, no question mark to keep, or ``%nl2sql?``: IPython's own help
        edits.append((row, end, f"{lines[row][:col]}get_ipython().run_line_magic({MAGIC!r}, {args!r})\n"))
    out = list(lines)
    for row, end, line in reversed(edits):
        out[row:end + 1] = [line]
    return out


def register(shell: Any) -> None:
    """Add :func:`keep_question_marks` to the shell's cleanup transformers (once)."""
    if keep_question_marks not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(keep_question_marks)


def unregister(shell: Any) -> None:
    """Remove :func:`keep_question_marks` from the shell's cleanup transformers."""
    transformers = shell.input_transformers_cleanup
    transformers[:] = [t for t in transformers if t is not keep_question_marks]
