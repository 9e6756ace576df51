"""`python -m lmdm.train ...` = `lmdm train ...` (torchrun launches this: torchrun ... -m lmdm.train base ...)."""

import sys

from lmdm.train.cli import main

sys.exit(main())
