"""Adapters of agents-core to agent frameworks, each behind its own optional extra."""
