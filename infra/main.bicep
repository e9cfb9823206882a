// AI inference gateway on Azure: the Function App (Flex Consumption), its storage, identity and
// telemetry, and the two simulator backends on Container Apps.
//
//   az deployment sub create --location <region> --template-file infra/main.bicep \
//     --parameters environmentName=<name> location=<region>
//   azd up            (reads infra/main.parameters.json)
//
// No secret is created, passed or returned: every client authenticates with Entra ID.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Environment name; names the resource group and seeds the unique resource suffix.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of a person or group to get Table Data Contributor (edit limit overrides, run the keys admin CLI); empty for none.')
param principalId string = ''

@description('Memory per Function App instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Upper bound of Function App instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Concurrent HTTP requests per Function App instance before scale-out.')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 64

@description('Blob container for the Flex Consumption deployment package.')
param deploymentContainerName string = 'app-package'

@description('Table holding rate-limit counters.')
param rateLimitTableName string = 'ratelimits'

@description('Table holding per-client limit overrides.')
param limitOverridesTableName string = 'limitoverrides'

@description('Table holding gateway API key hashes, tenants and their usage (issue #16).')
param gatewayKeysTableName string = 'gatewaykeys'

@description('Image of the Python simulator (services/python); empty uses a placeholder.')
param pythonBackendImage string = ''

@description('Image of the Node simulator (services/node); empty uses a placeholder.')
param nodeBackendImage string = ''

@minValue(0)
param backendMinReplicas int = 1

@minValue(1)
param backendMaxReplicas int = 10

@description('Gateway settings to change, e.g. {"UPSTREAM_TIMEOUT_S": "60"}; merged over the defaults below.')
param gatewaySettings object = {}

// Default of every gateway setting in function_app/core/settings.py SPECS, as strings, except
// PORT (the devhost's port; App Service owns PORT) and the settings wired from resources below.
// tests/infra/test_settings_parity.py fails when this drifts from SPECS.
var gatewaySettingDefaults = {
  SERVICE_NAME: 'ai-gateway'
  GATEWAY_BACKENDS: ''
  GATEWAY_ROUTES: ''
  UPSTREAM_CONNECT_TIMEOUT_S: '2'
  UPSTREAM_TIMEOUT_S: '120'
  UPSTREAM_CLIENT: 'aiohttp'
  UPSTREAM_MAX_CONNECTIONS: '512'
  MAX_BODY_BYTES: '1048576'
  HEALTH_PROBE_TIMEOUT_S: '0.5'
  HEALTH_CACHE_S: '1'
  RATE_LIMIT_ENABLED: 'true'
  GLOBAL_RPS: '1000'
  GLOBAL_BURST: '2000'
  CLIENT_RPS: '500'
  CLIENT_BURST: '1000'
  RATE_LIMIT_SHADOW_SCOPES: ''
  CLIENT_ID_SOURCE: 'address'
  CLIENT_ID_HEADER: 'x-api-key'
  TRUSTED_PROXIES: '127.0.0.1/32,::1/128'
  RATE_LIMIT_STORAGE_TIMEOUT_S: '0.5'
  RATE_LIMIT_FAILURE_MODE: 'open'
  RATE_LIMIT_EXPECTED_INSTANCES: '4'
  RATE_LIMIT_LEASE_S: '0.25'
  RATE_LIMIT_LEASE_TTL_S: '2'
  RATE_LIMIT_EXACT_BELOW_RPS: '1'
  RATE_LIMIT_GLOBAL_SHARDS: '1'
  RATE_LIMIT_CONFLICT_RETRIES: '3'
  RATE_LIMIT_OVERRIDES_REFRESH_S: '30'
  RATE_LIMIT_SWEEP_INTERVAL_S: '300'
  RATE_LIMIT_SWEEP_IDLE_S: '600'
  MODEL_ROUTES: ''
  DEFAULT_MODEL_BACKEND: ''
  MODEL_API_KEYS: ''
  CLIENT_TPM: '200000'
  MODEL_TPM: '1000000'
  DEFAULT_MAX_TOKENS: '1024'
  GATEWAY_AUTH: 'none'
  GATEWAY_KEY_CACHE_TTL_S: '4'
  GATEWAY_KEY_LOOKUPS_PER_S: '50'
  GATEWAY_USAGE_FLUSH_S: '60'
  MODEL_PRICES: ''
}

// Gateway settings whose values come from the resources this template creates.
var gatewayWiredSettings = {
  PY_SERVICE_URL: pythonBackend.outputs.url
  NODE_SERVICE_URL: nodeBackend.outputs.url
  TABLE_STORAGE_ENDPOINT: storage.outputs.tableEndpoint
  RATE_LIMIT_TABLE: rateLimitTableName
  LIMIT_OVERRIDES_TABLE: limitOverridesTableName
  GATEWAY_KEYS_TABLE: gatewayKeysTableName
}

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  workload: 'ai-inference-gateway'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module gatewayIdentity 'modules/identity.bicep' = {
  name: 'gateway-identity'
  scope: rg
  params: {
    name: 'id-gateway-${resourceToken}'
    location: location
    tags: tags
  }
}

module backendsIdentity 'modules/identity.bicep' = {
  name: 'backends-identity'
  scope: rg
  params: {
    name: 'id-backends-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: [
      rateLimitTableName
      limitOverridesTableName
      gatewayKeysTableName
    ]
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    name: 'cr${resourceToken}'
    location: location
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    registryName: registry.outputs.name
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
    backendsPrincipalId: backendsIdentity.outputs.principalId
    operatorPrincipalId: principalId
  }
}

module containerEnv 'modules/containerenv.bicep' = {
  name: 'container-env'
  scope: rg
  params: {
    name: 'cae-${resourceToken}'
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module pythonBackend 'modules/backend.bicep' = {
  name: 'python-backend'
  scope: rg
  dependsOn: [roles]
  params: {
    name: 'ca-py-${resourceToken}'
    serviceName: 'pybackend'
    location: location
    tags: tags
    environmentId: containerEnv.outputs.id
    image: pythonBackendImage
    port: 8001
    identityId: backendsIdentity.outputs.id
    registryServer: registry.outputs.loginServer
    minReplicas: backendMinReplicas
    maxReplicas: backendMaxReplicas
  }
}

module nodeBackend 'modules/backend.bicep' = {
  name: 'node-backend'
  scope: rg
  dependsOn: [roles]
  params: {
    name: 'ca-node-${resourceToken}'
    serviceName: 'nodebackend'
    location: location
    tags: tags
    environmentId: containerEnv.outputs.id
    image: nodeBackendImage
    port: 8002
    identityId: backendsIdentity.outputs.id
    registryServer: registry.outputs.loginServer
    minReplicas: backendMinReplicas
    maxReplicas: backendMaxReplicas
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'function-app'
  scope: rg
  // The host needs its storage roles before it first starts.
  dependsOn: [roles]
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: gatewayIdentity.outputs.id
    identityClientId: gatewayIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    perInstanceConcurrency: perInstanceConcurrency
    appSettings: union(gatewaySettingDefaults, gatewayWiredSettings, gatewaySettings)
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
// Not a secret: ingestion needs an Entra token because the component has local auth disabled.
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.appInsightsConnectionString
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output TABLE_STORAGE_ENDPOINT string = storage.outputs.tableEndpoint
output PY_SERVICE_URL string = pythonBackend.outputs.url
output NODE_SERVICE_URL string = nodeBackend.outputs.url
