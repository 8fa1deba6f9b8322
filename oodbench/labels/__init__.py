"""Label banks: extra class labels (outlier / negative), their sources and generators."""
