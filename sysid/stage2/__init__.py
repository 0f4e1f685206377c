"""Stage 2: MLP_node and embeddings initialised from stage 1, fine-tuned by Euler rollouts."""
