"""The ``tkd`` command line, one module per command group (lhotse style): each module
registers its commands on the root group in ``base`` and calls the plain functions in
``stages/``. Importing this package registers them all."""

from stages.commands import chains, data, deploy, student, teacher
from stages.commands.base import main

__all__ = ["chains", "data", "deploy", "main", "student", "teacher"]
