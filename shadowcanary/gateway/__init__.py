"""OpenAI-compatible gateway: route by flag, stream through, emit to the tap.

For services that are not Python (or would rather not wrap their client): point the
OpenAI base URL at the gateway and send the gateway key issued to the service.

- ``app``: the raw-ASGI app (auth, body checks, dispatch)
- ``proxy``: relaying to the upstreams, streaming, fallback to the baseline
- ``routing``: route and arm per call (the rollout flag, sticky per user)
- ``upstream`` / ``breaker``: pooled aiohttp session, circuit breaker per model
- ``capture`` / ``calls``: raw JSON to ``CapturedCall`` events for the tap
- ``auth``: per-service keys by SHA-256, rate limit per key
- ``ingest``: ``POST /v1/tap/events`` for services that call models themselves
- ``server``: uvicorn (uvloop, httptools), one or several processes
"""
