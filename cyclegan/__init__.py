"""What every stage shares: generator architectures, the model-package format, image conversion."""
