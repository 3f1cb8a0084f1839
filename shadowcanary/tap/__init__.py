"""The live path inside services: capture model calls without ever hurting them.

``Tap`` buffers and publishes captured calls (fail open, bounded, batched);
``tap_openai`` captures every chat completion of an OpenAI client; ``Redactor`` and
``Sampler`` are what the tap applies before anything leaves the process.
"""

from shadowcanary.tap.emitter import DropReason, Tap, TapStats
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.tap.redaction import Redactor
from shadowcanary.tap.sampling import Sampler

__all__ = ["DropReason", "Redactor", "Sampler", "Tap", "TapStats", "tap_openai"]
