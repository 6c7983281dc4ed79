"""Smaller and mixed models from trained ones: fast students distilled from a teacher (with an
optional adversarial critic), and weight interpolation between two related packages."""
