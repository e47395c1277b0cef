"""Put first on NewsModel's PYTHONPATH by run.sh: seldon-core imports TensorFlow whenever it is
installed (for its tftensor payloads), which would add ~0.5 GB and seconds of start-up to the
PyTorch-only BBC service. Seldon deploys each model in its own image, where the BBC one would
have no TensorFlow, and MLServer's BBC runtime never imports it either. seldon-core catches this
ImportError and carries on without tftensor support."""

raise ImportError("TensorFlow is hidden from this Seldon service (benchmarks/seldon/run.sh)")
