"""python -m mnist.verdict calibrate [RUN_DIR]"""

import sys

from .cli import main

sys.exit(main())
