"""``python -m eval ...`` is ``rag eval ...``."""
import sys

from rag.cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
