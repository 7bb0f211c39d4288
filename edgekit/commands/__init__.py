"""Extra `edgekit` subcommands, one module each.

A module here defines `register(add)`, where `add(name, help, epilog)` returns an argparse
parser for a new subcommand; the module sets `fn` on it with `parser.set_defaults(fn=...)`.
The function receives the parsed arguments and returns the exit code. The CLI imports every
module in this package, in name order, so a command is added without editing cli.py. Raise
edgekit.errors.EdgekitError for anything the user can fix: the CLI prints it cleanly.
"""
