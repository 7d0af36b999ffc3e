"""``python -m notify.cli``: the same as the ``notify`` command."""

from notify.cli.app import main

main()
