"""Durability and reliability: tests that kill, fill and corrupt."""
