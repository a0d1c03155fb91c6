import sys

from chatlake.cli import main

sys.exit(main())
