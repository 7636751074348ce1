"""A relayflow plugin for the tests: the ``stamp`` agent type and the ``echo`` provider."""
