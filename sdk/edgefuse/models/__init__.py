"""Reference models and the building blocks of the multimodal model contract (PyTorch; imported lazily)."""
