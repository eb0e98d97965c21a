"""SaaS models: the providers a ``saas/<provider>`` deployment may name (``providers``), their
``saas.*`` infer_params as typed settings (``settings``), and the retry policy every request to
them goes through (``retry``). The first two are light; ``retry`` imports the openai SDK and
tenacity, and loads only where a backend runs."""
