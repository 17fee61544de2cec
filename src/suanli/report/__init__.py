"""HTML reports (plotly) shared by the CLI commands."""
