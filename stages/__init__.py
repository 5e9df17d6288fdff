"""One module per CLI stage; each exposes plain functions that the commands in
``stages/commands/`` call (and Python callers may call directly)."""
