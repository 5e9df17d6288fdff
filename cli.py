"""tkd command line: ``python cli.py --help``.

The commands live in ``stages/commands/`` (one module per group) and call the plain
functions in ``stages/``: everything here can be done from Python with the same calls.
"""

from stages.commands import main

if __name__ == "__main__":
    main()
