"""Evaluation against a known truth: metrics (analysis.log keys) and figures. Never used by fitting."""
