try:  # Ctrl-C while dlbox starts: a word and 130, not a traceback (dlbox.cli does the same)
    import sys

    from dlbox.startup import CtrlCAfterwards  # imports nothing else of dlbox's

    with CtrlCAfterwards():  # until dlbox.cli has loaded, a Ctrl-C is noted, not raised
        from dlbox.cli import main
except KeyboardInterrupt:
    import sys

    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
