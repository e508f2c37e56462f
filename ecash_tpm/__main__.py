"""``python -m ecash_tpm`` is the same as the ``ecash-tpm`` command."""

import sys

from ecash_tpm.cli import main

sys.exit(main())
