"""Stage 1: frozen-model residuals, the joint regression with its correction library, and grouping."""
