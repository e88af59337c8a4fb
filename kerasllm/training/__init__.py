"""Training: strategy -> optimizer -> callbacks -> trainer (`model.fit`)."""
