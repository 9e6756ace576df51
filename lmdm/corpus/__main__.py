"""``python -m lmdm.corpus make|show|example ...`` (the same as ``lmdm corpus ...``)."""

from lmdm.corpus.cli import main

raise SystemExit(main())
