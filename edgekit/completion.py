"""Shell completion scripts for bash, zsh and fish, generated from the argparse tree.

The scripts are static: they hold every command, option and choice the parser had when
`edgekit completion SHELL` ran, so completing costs no Python start-up. Regenerate them after
upgrading edgekit. `--target` values are the target files found at generation time.

A command path is the words that select a parser: "" (top level), "hls", "hls generate". Each
script walks the words typed so far, skips options and their values, and extends the path with
every word that names a subcommand of the current path.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")

# top-level spellings that edgekit.cli.route rewrites to a subcommand path (tested to agree)
ALIASES = {"convert": "snn convert"}


@dataclass
class Option:
    flags: list[str]
    nargs: int  # values that follow the flag: 0 for switches
    choices: list[str]
    help: str


@dataclass
class Command:
    path: str
    options: list[Option] = field(default_factory=list)
    subcommands: dict[str, str] = field(default_factory=dict)  # name -> one-line help
    values: list[str] = field(default_factory=list)  # choices of a positional argument


def _nargs(action: argparse.Action) -> int:
    if action.nargs == 0:
        return 0
    if isinstance(action.nargs, int):
        return action.nargs
    return 1  # None, "?", "*", "+": complete one value after the flag


def _help(text: str | None) -> str:
    if not text or text == argparse.SUPPRESS:
        return ""
    return " ".join(text.split()).replace("%%", "%").replace("%(default)s", "")


def command_tree(
    parser: argparse.ArgumentParser, targets: list[str] | None = None,
    boards: list[str] | None = None,
) -> list[Command]:
    """Every command path of `parser`, with its options and subcommands, in a stable order.

    `targets` and `boards` become the choices of --target and --board, which the parser leaves
    open (their names are files, read when the script is generated)."""
    known = {"target": targets or [], "board": boards or []}
    out: list[Command] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        cmd = Command(path)
        out.append(cmd)
        children: list[tuple[str, argparse.ArgumentParser]] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: _help(a.help) for a in action._choices_actions}
                for name, sub in action.choices.items():
                    cmd.subcommands[name] = helps.get(name, "")
                    children.append((name, sub))
            elif not action.option_strings:
                cmd.values += [str(c) for c in action.choices or []]
            else:
                choices = [str(c) for c in action.choices] if action.choices else []
                if not choices:
                    choices = list(known.get(action.dest, []))
                cmd.options.append(
                    Option(list(action.option_strings), _nargs(action), choices, _help(action.help))
                )
        for name, sub in children:
            walk(sub, f"{path} {name}".strip())

    walk(parser, "")
    paths = {c.path for c in out}
    for alias, target in ALIASES.items():
        if target in paths and alias not in out[0].subcommands:
            out[0].subcommands[alias] = f"= edgekit {target}"
    return out


def _alias_case_bash() -> str:
    arms = " ".join(f"{_sh_quote(a)}) path={_sh_quote(t)} ;;" for a, t in ALIASES.items())
    return f'case "$path" in {arms} esac'


# --- bash (and zsh through bashcompinit) -------------------------------------------------------


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _bash_functions(tree: list[Command]) -> str:
    # a path's words: its subcommands, or the choices of its positional argument
    subs = []
    for c in tree:
        if c.subcommands or c.values:
            words = " ".join([*c.subcommands, *c.values])
            subs.append(f"        {_sh_quote(c.path)}) echo {_sh_quote(words)} ;;")
    opts = []
    for c in tree:
        flags = " ".join(f for o in c.options for f in o.flags)
        opts.append(f"        {_sh_quote(c.path)}) echo {_sh_quote(flags)} ;;")
    nargs = []
    choices = []
    for c in tree:
        for o in c.options:
            keys = "|".join(_sh_quote(f"{c.path}|{f}") for f in o.flags)
            if o.nargs:
                nargs.append(f"        {keys}) echo {o.nargs} ;;")
            if o.choices:
                choices.append(f"        {keys}) echo {_sh_quote(' '.join(o.choices))} ;;")
    nl = "\n"
    return f"""\
_edgekit_subcommands() {{
    case "$1" in
{nl.join(subs)}
    esac
}}

_edgekit_options() {{
    case "$1" in
{nl.join(opts)}
    esac
}}

# how many values follow an option (nothing printed: a switch)
_edgekit_nargs() {{
    case "$1|$2" in
{nl.join(nargs)}
    esac
}}

_edgekit_choices() {{
    case "$1|$2" in
{nl.join(choices)}
    esac
}}

_edgekit() {{
    # $2 is the word being completed, $3 the one before it (bash and zsh's bashcompinit alike)
    local cur="$2" prev="$3" path="" w subs n skip=0 i=0
    COMPREPLY=()
    # walk the words before the cursor; counting them keeps this independent of whether the
    # shell indexes arrays from 0 (bash) or 1 (zsh)
    for w in "${{COMP_WORDS[@]}}"; do
        i=$((i + 1))
        [ "$i" -eq 1 ] && continue
        [ "$i" -gt "$COMP_CWORD" ] && break
        if [ "$skip" -gt 0 ]; then skip=$((skip - 1)); continue; fi
        case "$w" in
            -*=*) continue ;;
            -*) n=$(_edgekit_nargs "$path" "$w"); skip=${{n:-0}}; continue ;;
        esac
        subs=" $(_edgekit_subcommands "$path") "
        case "$subs" in *" $w "*) path="${{path:+$path }}$w" ;; esac
        {_alias_case_bash()}
    done
    if [ "$skip" -gt 0 ]; then
        local choices
        choices=$(_edgekit_choices "$path" "$prev")
        if [ -n "$choices" ]; then
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    fi
    case "$cur" in
        -*) COMPREPLY=($(compgen -W "$(_edgekit_options "$path")" -- "$cur")); return 0 ;;
    esac
    subs=$(_edgekit_subcommands "$path")
    if [ -n "$subs" ]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}}
"""


def bash_script(tree: list[Command]) -> str:
    return (
        "# bash completion for edgekit, generated by `edgekit completion bash`.\n"
        "# Install: edgekit completion bash > ~/.local/share/bash-completion/completions/edgekit\n"
        "# or add `eval \"$(edgekit completion bash)\"` to ~/.bashrc\n\n"
        + _bash_functions(tree)
        + "\ncomplete -o filenames -o bashdefault -F _edgekit edgekit\n"
    )


def zsh_script(tree: list[Command]) -> str:
    # zsh runs the bash functions through its bashcompinit layer: one completion logic to
    # maintain, and zsh gets the same answers as bash
    return (
        "#compdef edgekit\n"
        "# zsh completion for edgekit, generated by `edgekit completion zsh`.\n"
        "# Install: edgekit completion zsh > \"${fpath[1]}/_edgekit\" (then restart zsh),\n"
        "# or add `eval \"$(edgekit completion zsh)\"` to ~/.zshrc after compinit\n\n"
        "autoload -U +X bashcompinit && bashcompinit\n\n"
        + _bash_functions(tree)
        + "\ncomplete -o filenames -o bashdefault -F _edgekit edgekit\n"
    )


# --- fish --------------------------------------------------------------------------------------


def _fish_quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(tree: list[Command]) -> str:
    lines = [
        "# fish completion for edgekit, generated by `edgekit completion fish`.",
        "# Install: edgekit completion fish > ~/.config/fish/completions/edgekit.fish",
        "",
        "function __edgekit_subcommands",
        "    switch \"$argv[1]\"",
    ]
    for c in tree:
        if c.subcommands:
            lines += [f"        case {_fish_quote(c.path)}",
                      f"            printf '%s\\n' {' '.join(c.subcommands)}"]
    lines += ["    end", "end", "",
              "function __edgekit_nargs",
              "    switch \"$argv[1]|$argv[2]\""]
    for c in tree:
        for o in c.options:
            if o.nargs:
                keys = " ".join(_fish_quote(f"{c.path}|{f}") for f in o.flags)
                lines += [f"        case {keys}", f"            echo {o.nargs}"]
    lines += [
        "    end",
        "end",
        "",
        "# the command path (\"\", \"hls\", \"hls generate\") selected by the words typed so far",
        "function __edgekit_path",
        "    set -l path ''",
        "    set -l skip 0",
        "    for w in (commandline -opc)[2..-1]",
        "        if test $skip -gt 0",
        "            set skip (math $skip - 1)",
        "            continue",
        "        end",
        "        if string match -q -- '-*=*' $w",
        "            continue",
        "        end",
        "        if string match -q -- '-*' $w",
        "            set -l n (__edgekit_nargs \"$path\" $w)",
        "            test -n \"$n\"; and set skip $n",
        "            continue",
        "        end",
        "        if contains -- $w (__edgekit_subcommands \"$path\")",
        "            set path (string trim -- \"$path $w\")",
        "        end",
        *[f"        test \"$path\" = {_fish_quote(a)}; and set path {_fish_quote(t)}"
          for a, t in ALIASES.items()],
        "    end",
        "    echo $path",
        "end",
        "",
        "function __edgekit_at",
        "    set -l p (__edgekit_path)",
        "    test \"$p\" = \"$argv[1]\"",
        "end",
        "",
        "complete -c edgekit -f",
    ]
    for c in tree:
        cond = _fish_quote(f"__edgekit_at {_fish_quote(c.path)}")
        for name, help_ in c.subcommands.items():
            lines.append(f"complete -c edgekit -n {cond} -a {name} -d {_fish_quote(help_)}")
        for o in c.options:
            spec = []
            for f in o.flags:
                if f.startswith("--"):
                    spec.append(f"-l {f[2:]}")
                elif len(f) == 2:
                    spec.append(f"-s {f[1]}")
                else:
                    spec.append(f"-o {f[1:]}")
            if o.choices:
                spec.append(f"-x -a {_fish_quote(' '.join(o.choices))}")
            elif o.nargs:
                spec.append("-r -F")  # a value, usually a file
            lines.append(f"complete -c edgekit -n {cond} {' '.join(spec)} "
                         f"-d {_fish_quote(o.help)}")
        if c.values:
            lines.append(f"complete -c edgekit -n {cond} -a {_fish_quote(' '.join(c.values))}")
        elif not c.subcommands and c.path:
            lines.append(f"complete -c edgekit -n {cond} -F")  # the model or file argument
    return "\n".join(lines) + "\n"


def completion_script(shell: str, parser: argparse.ArgumentParser,
                      targets: list[str] | None = None, boards: list[str] | None = None) -> str:
    """The completion script for `shell` (bash, zsh or fish) of `parser`."""
    tree = command_tree(parser, targets, boards)
    return {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](tree)
