"""Extra `loyalty` subcommands, one module each (see engine.shell.cli._register_commands)."""
