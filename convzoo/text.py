"""Strings that came from files (class names, file and entry names, metadata) made safe to show:
control characters escaped before they reach a terminal, a one-line error, a title or HTML."""
import unicodedata

# characters a terminal or renderer acts on: C0/C1 controls, DEL, line/paragraph separators, bidi
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(c):
    return unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def printable(value):
    """`value` as text with every control or invisible formatting character escaped (\\x1b, \\u202e)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and not any(_unsafe(c) for c in text):
        return text
    out = []
    for c in text:
        if c in _NAMED:
            out.append(_NAMED[c])
        elif _unsafe(c) or (not c.isprintable() and c != " "):
            n = ord(c)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
        else:
            out.append(c)
    return "".join(out)


def one_line(message):
    """An error message on one printable line."""
    return printable(message)


def strict_json(obj, **kwargs):
    """(JSON text, how many NaN/inf became null): JSON has no NaN, so `--json` stays parseable."""
    import json
    import math

    bad = [0]

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            bad[0] += 1
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), allow_nan=False, **kwargs), bad[0]
