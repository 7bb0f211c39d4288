"""`edgekit completion bash|zsh|fish`: print a shell completion script (edgekit/completion.py)."""

from __future__ import annotations

import argparse
from typing import Any

from edgekit.completion import SHELLS

EPILOG = """\
examples:
  eval "$(edgekit completion bash)"                      this bash session
  edgekit completion bash > ~/.local/share/bash-completion/completions/edgekit
  edgekit completion zsh > "${fpath[1]}/_edgekit"        then restart zsh
  edgekit completion fish > ~/.config/fish/completions/edgekit.fish

The script completes commands, subcommands, options, option choices (--precision, --as,
--target and --board with the names installed here, ...) and file names. It is generated
from this edgekit's own argument parser, so regenerate it after an upgrade.
"""


def cmd_completion(args: argparse.Namespace) -> int:
    from edgekit.cli import build_parser
    from edgekit.completion import completion_script
    from edgekit.targets import list_boards, list_targets

    script = completion_script(args.shell, build_parser(), list_targets(), list_boards())
    print(script, end="")
    return 0


def register(add: Any) -> None:
    p = add("completion", "print a shell completion script for bash, zsh or fish", EPILOG)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(fn=cmd_completion)
