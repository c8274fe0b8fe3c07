"""Evaluation: character strength (markers), an order-swapped LLM judge, Bradley-Terry ratings with
bootstrap intervals, revealed preferences over hidden traits, a 0-100 quality audit, a capability
probe set, and a before/after comparison that recommends promote or reject (or refuses to decide)."""
