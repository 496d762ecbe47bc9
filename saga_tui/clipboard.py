"""Copying a saga id, and saying truthfully where it went.

A terminal never answers an OSC 52 "set the clipboard" request, and tmux drops it from
applications under its default ``set-clipboard external``. So the dashboard sends OSC 52
and, where it can be confirmed, also hands the text to something that answers: tmux's
paste buffer (``tmux load-buffer``), or a local clipboard tool (``wl-copy``, ``xclip``,
``xsel``, ``pbcopy``). The message says "copied" only when one of those succeeded, and
always shows the whole id so it can be copied by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import typing

Runner = typing.Callable[[list[str], str], typing.Awaitable[tuple[int, str]]]
"""Runs a command with ``stdin`` text; (exit code, stdout)."""

TIMEOUT = 2.0


async def run_command(args: list[str], stdin: str) -> tuple[int, str]:
    """Run ``args`` feeding ``stdin``; (exit code, stdout), 127 when it cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            # xclip stays behind to serve the selection: it must not hold our pipes.
            stdout=asyncio.subprocess.PIPE if not stdin else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), TIMEOUT)
    except (OSError, TimeoutError):
        return 127, ""
    return proc.returncode or 0, (out or b"").decode(errors="replace").strip()


@dataclasses.dataclass(frozen=True, slots=True)
class Copied:
    """Where the text went: ``confirmed`` only when a tool said it took it."""

    confirmed: bool
    message: str


def _tools(environ: typing.Mapping[str, str]) -> list[list[str]]:
    tools: list[list[str]] = []
    if environ.get("WAYLAND_DISPLAY"):
        tools.append(["wl-copy"])
    if environ.get("DISPLAY"):
        tools += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    if sys.platform == "darwin":
        tools.append(["pbcopy"])
    return [t for t in tools if shutil.which(t[0])]


async def copy(
    text: str,
    environ: typing.Mapping[str, str],
    run: Runner = run_command,
) -> Copied:
    """Hand ``text`` to what can confirm it took it; the message for the operator."""
    by_hand = f"copy by hand: {text}"
    if environ.get("TMUX") and shutil.which("tmux"):
        code, setting = await run(["tmux", "show-options", "-gv", "set-clipboard"], "")
        forward = code == 0 and setting in ("on", "external")
        loaded, _ = await run(["tmux", "load-buffer", *(["-w"] if forward else []), "-"], text)
        if loaded == 0:
            where = "tmux's paste buffer (prefix ])"
            if forward:
                where += " and sent to the terminal's clipboard"
            return Copied(True, f"copied {text} to {where}")
    for tool in _tools(environ):
        code, _ = await run(tool, text)
        if code == 0:
            return Copied(True, f"copied {text} to the clipboard ({tool[0]})")
    return Copied(
        False,
        "asked the terminal to copy the id (OSC 52; many terminals ignore it), " + by_hand,
    )
