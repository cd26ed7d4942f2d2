"""rivetpy: Python runners and actors for Rivet.

The runner-protocol codec lives in the sibling package :mod:`codec`. The Trio runtime, the
actor API and the embedded engine are being built on top of it (see the README's status).
"""

__version__ = "0.1.0"
