"""Streamlit dashboard for electoral commissions (see the dashboard issue)."""

__all__: list[str] = []
