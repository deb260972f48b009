"""The harness: a pytest plugin that gates language-model releases on behaviour."""

__version__ = "0.1.0"
