"""The ``dermassist`` subcommands: one module each, imported only when its command is chosen."""
