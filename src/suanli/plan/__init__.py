"""Capacity planning: which chips to buy, where, under export controls, budget and power."""
