"""The tool-calling LoRA adapter for SmolLM2-135M-Instruct: synthetic apps, their cases, traces."""
