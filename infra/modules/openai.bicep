// Azure OpenAI: the optional model backend of the gateway's OpenAI routes (main.bicep
// deployOpenAI, off by default). Key authentication is disabled: the gateway's managed identity
// signs in with an Entra ID token (GATEWAY_BACKENDS auth "entra", docs/AZURE_OPENAI.md) and holds
// the role Cognitive Services OpenAI User on this account only.

param name string
param location string
param tags object = {}

@description('Object id of the gateway identity, granted Cognitive Services OpenAI User.')
param gatewayPrincipalId string

@description('Deployment name; the gateway routes the model of the same name to it.')
param deploymentName string = 'gpt-4o-mini'

@description('Model and version to deploy (must be offered in the region).')
param modelName string = 'gpt-4o-mini'
param modelVersion string = '2024-07-18'

@description('Deployment SKU (GlobalStandard: pay-as-you-go; ProvisionedManaged: PTU) and capacity.')
param deploymentSku string = 'GlobalStandard'
param capacity int = 10

// Cognitive Services OpenAI User: inference calls, no keys, no deployment management.
var openAiUserRole = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: deploymentSku
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
  }
}

resource gatewayUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, gatewayPrincipalId, openAiUserRole)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', openAiUserRole)
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = account.properties.endpoint
output deploymentName string = deployment.name
