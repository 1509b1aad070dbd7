"""Speed and memory of optax_prox against the bare optimizers (`make bench`)."""
