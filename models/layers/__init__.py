"""What every model shares: feature embeddings over the dataset's vocabulary spaces, MLPs, attention
pooling."""
