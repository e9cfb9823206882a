// The Key Vault holding the gateway's secrets, read by the Function App through Key Vault
// references (@Microsoft.KeyVault(SecretUri=...)) resolved with the gateway identity. RBAC
// authorization only (no access policies); the gateway identity gets Key Vault Secrets User on
// this vault (roles.bicep). Secret values arrive as @secure() parameters, so they are not kept in
// the deployment history, and no output carries them.

@minLength(3)
@maxLength(24)
param name string

param location string
param tags object = {}

@description('Secret name -> value. Every value is stored; an empty one is not allowed by Key Vault.')
@secure()
param secrets object

@description('Days a deleted vault stays recoverable (7 to 90). azd down --purge removes it now.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    publicNetworkAccess: 'Enabled'
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for item in items(secrets): {
    parent: vault
    name: item.key
    properties: {
      value: item.value
    }
  }
]

output name string = vault.name
output uri string = vault.properties.vaultUri
