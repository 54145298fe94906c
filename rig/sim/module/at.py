"""AT command lines: parsing what the host sends and framing what the module answers (BC95/BC28 style)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE_BYTES = 4096  # the module's command buffer (a 512-byte payload in hex fits); a longer line is ERROR


@dataclass(frozen=True)
class AtCommand:
    """`AT+NAME=args` (set), `AT+NAME?` (read), `AT+NAME=?` (test) or `AT+NAME` / `ATI` (execute)."""

    name: str
    kind: str
    args: tuple[str, ...]
    text: str


def split_arguments(text: str) -> tuple[str, ...]:
    """Comma-separated arguments; commas inside double quotes stay, the quotes go."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    args.append("".join(current).strip())
    return tuple(args)


def parse(line: str) -> AtCommand | None:
    """Parse one command line; None when it holds no AT (garbage is ignored, as a modem does).

    Like a modem's command parser, which hunts for the `AT` prefix, noise before it (a glitch on the
    line, a byte left from waking the UART) is skipped rather than spoiling the command. A line over
    MAX_LINE_BYTES overran the buffer: a command of kind `overrun` that no handler takes (`ERROR`).
    """
    if len(line) > MAX_LINE_BYTES:
        return AtCommand("", "overrun", (), line[:40])
    text = line.strip()
    start = text.upper().find("AT")
    if start < 0:
        return None
    text = text[start:]
    body = text[2:]
    if body.endswith("=?"):
        return AtCommand(body[:-2].upper(), "test", (), text)
    if body.endswith("?") and "=" not in body:
        return AtCommand(body[:-1].upper(), "read", (), text)
    name, equals, rest = body.partition("=")
    if equals:
        return AtCommand(name.upper(), "set", split_arguments(rest), text)
    return AtCommand(name.upper(), "exec", (), text)


def frame(*lines: str, final: str = "OK") -> bytes:
    """Response lines each framed `\\r\\n<line>\\r\\n`, then the final result code."""
    out = "".join(f"\r\n{line}\r\n" for line in lines)
    if final:
        out += f"\r\n{final}\r\n"
    return out.encode("latin-1")


def urc(line: str) -> bytes:
    return f"\r\n{line}\r\n".encode("latin-1")


def cme_error(code: int) -> bytes:
    return frame(final=f"+CME ERROR: {code}")
