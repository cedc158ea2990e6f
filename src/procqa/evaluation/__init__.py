"""Evaluation: question sets, baselines, measures, reports. Imports ranking and below; its
measures see rankers only through their own `Ranker` protocol."""
