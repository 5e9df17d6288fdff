"""One module per CLI stage; each exposes plain functions that ``cli.py`` calls."""
