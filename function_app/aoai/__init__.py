"""Azure OpenAI and Foundry as backends: their wire (deployment paths, api-version), Azure-style
client paths served by the gateway, and the credentials sent to such backends."""
