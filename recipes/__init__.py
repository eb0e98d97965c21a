"""Recipes: end-to-end scripts built on byzer_agents (data generation, fine-tuning runs)."""
