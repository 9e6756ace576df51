"""``python -m lmdm.eval AUDIO_OR_DIR ...`` (the same as ``lmdm eval ...``)."""

from lmdm.eval.cli import main

raise SystemExit(main())
