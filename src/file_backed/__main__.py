"""``python -m file_backed``: the same as the ``file-backed`` command."""

from file_backed.cli import main

main(prog_name="file-backed")
