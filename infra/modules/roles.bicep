// Role assignments, all with built-in role definition ids (tests/infra checks the set).
//   gateway identity  -> storage account: Blob Data Owner (host storage, timer leases and the
//                        deployment package), Table Data Contributor (rate-limit tables, and gatewaykeys: key lookups, usage); no
//                        Queue role: the app has no queue trigger or binding; App Insights: Monitoring Metrics Publisher (Entra
//                        ingestion, since local auth is off).
//                        Key Vault: Key Vault Secrets User (Key Vault references in app settings).
//   backends identity -> registry: AcrPull.
//   optional operator -> storage account: Table Data Contributor, to edit limit overrides and
//                        run the keys admin CLI (python -m function_app.admin) against Azure;
//                        Key Vault: Key Vault Secrets Officer, to set upstream keys.

param storageAccountName string
param appInsightsName string
param registryName string
param keyVaultName string
param gatewayPrincipalId string
param backendsPrincipalId string

@description('Object id of a person or group allowed to read and write the tables; empty for none.')
param operatorPrincipalId string = ''

@description('Kind of operatorPrincipalId: azd passes AZURE_PRINCIPAL_TYPE (ServicePrincipal when deploying from CI).')
@allowed(['User', 'Group', 'ServicePrincipal'])
param operatorPrincipalType string = 'User'

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

var gatewayStorageRoles = [
  roleIds.storageBlobDataOwner
  roleIds.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource gatewaySecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, gatewayPrincipalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roleIds.keyVaultSecretsUser
    )
  }
}

resource operatorSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roleIds.keyVaultSecretsOfficer
    )
  }
}

resource gatewayStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in gatewayStorageRoles: {
    name: guid(storage.id, gatewayPrincipalId, roleId)
    scope: storage
    properties: {
      principalId: gatewayPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]

resource gatewayTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, gatewayPrincipalId, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roleIds.monitoringMetricsPublisher
    )
  }
}

resource backendsPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, backendsPrincipalId, roleIds.acrPull)
  scope: registry
  properties: {
    principalId: backendsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrPull)
  }
}

resource operatorTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(storage.id, operatorPrincipalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roleIds.storageTableDataContributor
    )
  }
}
