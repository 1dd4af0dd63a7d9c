import sys

from dlbox.cli import main

sys.exit(main())
