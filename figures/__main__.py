import sys

from figures.released import main

raise SystemExit(main(sys.argv[1:]))
