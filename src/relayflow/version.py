"""relayflow's version, in a module of its own: every layer may read it without importing the
package's public facade (relayflow/__init__.py), which names every layer."""

__version__ = "0.1.0"
