"""The web page, JSON API, ``/healthz`` and ``/metrics`` of `coderag serve --http`.

``app`` (routes and handlers), ``auth`` (loopback host check and token), ``highlight``
(Pygments → escaped HTML lines), ``status`` (the background status snapshot), ``server``
(uvicorn entry point). Templates and static assets ship inside the package: no build step,
nothing fetched at run time.
"""
