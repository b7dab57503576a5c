"""Evaluation: metrics, the paper's protocol, the real test sets and the paper's published figures."""
