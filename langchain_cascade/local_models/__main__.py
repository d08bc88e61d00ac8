"""``python -m langchain_cascade.local_models``: see :mod:`.cli`."""

import sys

from langchain_cascade.local_models.cli import main

sys.exit(main())
