"""Development tools: the private-name check of ``make lint``, mongoeco's wire server."""
