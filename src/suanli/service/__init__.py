"""The control plane: HTTP API, database, scheduler loop (``suanli serve``).

Nothing here is imported by ``suanli --help``: the CLI modules import it inside functions.
"""
