"""The service layer: everything views may ask for, scoped to the caller's household."""
