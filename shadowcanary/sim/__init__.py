"""A SIMULATOR of an OpenAI-compatible model API. It is not a model.

It answers ``/v1/chat/completions`` (streamed or not), ``/v1/responses`` (streamed
or not, function calls, reasoning items and tokens, ``previous_response_id`` over the
responses it stored, the stored turns reported as cached input), ``/v1/embeddings``,
``/v1/moderations`` and ``/v1/models`` in exactly OpenAI's wire shapes, so the
official ``openai`` SDKs and anything speaking the API work against it unchanged. It
also speaks Azure OpenAI's two dialects: classic deployments
(``/openai/deployments/<name>/...?api-version=``, ``api-key`` header) and the v1 API
(``/openai/v1/...``).
The text it returns is generated from fixed word lists: a deterministic function of
the prompt and the model's profile, with no meaning. It stands in for the vendor API
in tests, the demo and benchmarks; never point production traffic at it expecting
answers.

Per-model profiles (``profiles.ModelProfile``) set latency (lognormal through a
median and a p99), time to first token, streaming pace, HTTP 500 and 429 rates,
how far a model's answers diverge from another model's, verbosity, and the rates of
invalid JSON, wrong tool calls, refusals and truncation, and how much it reasons.
Latency and error draws come from a seeded RNG; the text never does. Profiles
change at run time through ``/admin`` (bearer admin token).

Start one: ``python -m shadowcanary.sim --port 8765 --admin-token T`` or
``serve(...)``; in tests: ``shadowcanary.launcher.sim.run_simulator()``.
"""

from __future__ import annotations

from shadowcanary.sim.profiles import ModelProfile, ProfileSet, default_profiles, load_profiles
from shadowcanary.sim.server import serve

__all__ = ["ModelProfile", "ProfileSet", "default_profiles", "load_profiles", "serve"]
