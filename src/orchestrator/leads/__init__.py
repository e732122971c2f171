"""Leads: the people integrators send us."""
