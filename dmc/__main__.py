"""``python -m dmc``: the ``dmc`` command, for launchers that run modules (``torchrun ... -m dmc search ...``)."""

from dmc.cli.main import main

main()
