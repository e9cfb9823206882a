"""Where typed settings become components: one module per concept, and the gateway build."""
