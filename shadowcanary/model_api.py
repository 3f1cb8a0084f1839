"""How to reach one model endpoint: the URL of each operation and the credential header.

OpenAI (and anything OpenAI-compatible) and Azure OpenAI's v1 API take OpenAI's paths
under the base URL; Azure OpenAI's classic API puts the deployment in the path and
``api-version`` in the query, and every Azure form takes the key in ``api-key``.
Shared by the replay worker's direct HTTP path and the gateway's upstreams.
"""

from __future__ import annotations

from yarl import URL

from shadowcanary.settings import ModelEndpoint

_PATHS = ("/chat/completions", "/responses", "/embeddings")


def operation_urls(name: str, endpoint: ModelEndpoint) -> dict[str, URL]:
    """Where each operation of model ``name`` is posted, in the endpoint's dialect.

    OpenAI and Azure's v1 API: the OpenAI path under ``base_url``. Azure's classic
    API: chat and embeddings under ``/openai/deployments/<deployment>``, Responses at
    ``/openai/responses`` (the deployment in the body's ``model``), both with
    ``api-version`` in the query.
    """
    base = endpoint.base_url.rstrip("/")
    if endpoint.provider == "azure" and endpoint.api_version is not None:
        deployment = endpoint.upstream_model or name
        query = {"api-version": endpoint.api_version}
        return {
            "/chat/completions": URL(f"{base}/openai/deployments")
            .joinpath(deployment, "chat", "completions")
            .with_query(query),
            "/responses": URL(f"{base}/openai/responses").with_query(query),
            "/embeddings": URL(f"{base}/openai/deployments")
            .joinpath(deployment, "embeddings")
            .with_query(query),
        }
    return {path: URL(base + path) for path in _PATHS}


def auth_headers(endpoint: ModelEndpoint) -> dict[str, str]:
    """The credential header of the endpoint: Azure's ``api-key``, else a Bearer token."""
    key = endpoint.api_key.get_secret_value()
    if endpoint.provider == "azure":
        return {"api-key": key}
    return {"Authorization": f"Bearer {key}"}


def passthrough_url(endpoint: ModelEndpoint, path: str, query: str) -> URL:
    """Where an OpenAI ``/v1/...`` path the gateway does not route goes on this endpoint."""
    base = endpoint.base_url.rstrip("/")
    tail = path[len("/v1") :] if path.startswith("/v1/") else path
    if endpoint.provider == "azure" and endpoint.api_version is not None:
        url = URL(f"{base}/openai{tail}", encoded=False)
        pairs = [
            *URL(f"?{query}", encoded=True).query.items(),
            ("api-version", endpoint.api_version),
        ]
        return url.with_query(pairs)
    url = URL(base + (tail if base.endswith("/v1") else path), encoded=False)
    return url.with_query(query) if query else url
