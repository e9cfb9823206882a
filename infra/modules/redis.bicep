// Azure Managed Redis: the optional shared tier of the response cache (main.bicep deployRedis,
// off by default). Access keys are disabled: the gateway's managed identity signs in with an
// Entra ID token (azure-identity in the app, CACHE_REDIS_ENTRA=true) through the database's
// default access policy. TLS only (port 10000), no public key material anywhere.

param name string
param location string
param tags object = {}

@description('Object id of the gateway identity, granted the default data access policy.')
param gatewayPrincipalId string

@description('Azure Managed Redis SKU; Balanced_B0 is the smallest.')
param skuName string = 'Balanced_B0'

resource cluster 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    minimumTlsVersion: '1.2'
    // Required from 2025-07-01. Reachable over the internet, but only with an Entra token of an
    // identity on the access policy, over TLS (access keys are disabled on the database).
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'NoCluster'
    evictionPolicy: 'AllKeysLRU'
    accessKeysAuthentication: 'Disabled'
  }
}

resource gatewayAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-07-01' = {
  parent: database
  name: 'gateway'
  properties: {
    accessPolicyName: 'default'
    user: {
      objectId: gatewayPrincipalId
    }
  }
}

output hostName string = cluster.properties.hostName
output url string = 'rediss://${cluster.properties.hostName}:10000'
