import sys

try:  # Ctrl-C while dlbox starts: a word and 130, not a traceback (dlbox.cli does the same)
    from dlbox.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
