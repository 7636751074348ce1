"""``relayflow serve``: the HTTP API (FastAPI) over the run store, the worker pool that executes
submitted runs, Server-Sent Events, the review queue, and Prometheus metrics.

``create_app`` (server/app.py) builds the app; its logic lives in ``Operations``
(server/operations.py).
"""
