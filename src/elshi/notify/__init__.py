"""Outbound delivery to people: e-mail through SMTP."""
