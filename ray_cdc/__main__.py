import sys

from ray_cdc.cli import main

sys.exit(main())
