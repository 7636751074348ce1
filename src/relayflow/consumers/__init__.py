"""Event consumers that a workflow attaches by configuration (its ``consumers:`` section): the
base class a consumer type extends, the registry of types, and the built-in types."""
