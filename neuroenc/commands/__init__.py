"""Subcommands of the ``neuroenc`` command line, one module each (see :mod:`neuroenc.cli`)."""
