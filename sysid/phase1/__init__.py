"""Phase 1: the frozen reaction model (log_k and MLP_sub, with S given), from the truth or trained."""
