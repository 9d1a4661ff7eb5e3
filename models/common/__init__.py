"""Layer code shared by several papers' networks (kept here so no model folder imports another)."""
