"""Where models run: `ModelHost` (one model, one thread), its Dask actor, clusters, node handles."""
