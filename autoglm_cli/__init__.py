"""autoglm: redeploy and operate GLM-family LLM services after their code or weights moved."""

__version__ = "0.2.0"
