"""CDL: the Continuous Deep Learning workflow (data, model and deployment pipelines) as code."""

__version__ = "0.1.0"
