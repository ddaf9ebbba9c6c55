"""``python -m ingest PATH...`` is ``rag ingest PATH...``."""
import sys

from rag.cli import main

sys.exit(main(["ingest", *sys.argv[1:]]))
