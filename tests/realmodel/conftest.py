"""Real-model tier: the Ollama stand-in with Qwen2.5-Coder (0.5B or 1.5B) on llama.cpp (REAL_MODEL=1)."""

from realmodel.real_ollama import real_ollama  # noqa: F401
