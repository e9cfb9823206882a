// Azure AI Content Safety for the guardrails (main.bicep deployContentSafety, off by default):
// text analysis and Prompt Shields, called by the gateway with its managed identity. Local
// (key) authentication is disabled, so no key exists to leak: the identity's Cognitive Services
// User role is the only way in. A custom subdomain is what Entra tokens require.

param name string
param location string
param tags object = {}

@description('Object id of the gateway identity, granted Cognitive Services User.')
param gatewayPrincipalId string

@description('S0 is the standard tier; F0 (free, one per subscription) suits a trial.')
@allowed(['F0', 'S0'])
param skuName string = 'S0'

var cognitiveServicesUser = 'a97b65f3-24c7-4388-baec-2e87135dc908'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'ContentSafety'
  sku: {
    name: skuName
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource gatewayUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, gatewayPrincipalId, cognitiveServicesUser)
  scope: account
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesUser)
  }
}

output endpoint string = account.properties.endpoint
output name string = account.name
