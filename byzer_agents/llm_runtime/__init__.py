"""Deployments and backends: where models run. Importing this package loads no backend; each
backend module imports its own heavy dependencies (ray, torch, openai) when it is used."""
