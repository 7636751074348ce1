"""``python -m relayflow``: the same command line as the ``relayflow`` script."""

from relayflow.cli import main

if __name__ == "__main__":
    main()
