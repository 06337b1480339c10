"""jaxrobust."""
