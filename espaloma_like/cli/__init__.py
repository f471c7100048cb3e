"""Command-line interface: one module per command, logging configured only here."""
