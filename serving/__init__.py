"""The translation service: BentoML services, batching, metrics, settings, web page."""
