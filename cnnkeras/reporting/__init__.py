"""Figures and reports (plotly), loaded lazily."""
