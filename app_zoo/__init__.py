"""Applications of lightning_rl by domain: env wrappers and ready configs (``app_zoo/<domain>/<env>/``)."""
