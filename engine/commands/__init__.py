"""Extra `loyalty` subcommands, one module each (see engine.cli._register_commands)."""
