"""Several nodes, one deployment (with a Redis URL).

A Session lives on exactly one node. Redis holds the node heartbeats and
the session -> node directory (``directory.py``); nodes talk to each other
over authenticated WebSocket links (``links.py``), which carry the socket.io
packets of clients handed over to the node hosting their session
(``relay.py``) and a few requests (end a session). ``node.py`` ties it
together for the app; ``redis_store.py`` keeps sessions in Redis for
deployments on several boxes; ``workers.py`` runs one node per core.
"""
