"""What a workflow file may say: the pydantic models of its sections (``file.py``), the loaded
``Workflow`` (``workflow.py``), the YAML reader that remembers each value's line
(``yaml_lines.py``) and the one-line problems a bad file produces (``problems.py``). Loading and
checking a file, which asks the agent and provider registries, is ``relayflow.spec``."""
