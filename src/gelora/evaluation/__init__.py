"""Evaluation after training: generation, IFBench (rule-checked), MT-Bench answers."""
