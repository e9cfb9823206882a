// AI inference gateway on Azure: the Function App (Flex Consumption), its storage, identity and
// telemetry, and the two simulator backends on Container Apps.
//
//   az deployment sub create --location <region> --template-file infra/main.bicep \
//     --parameters environmentName=<name> location=<region>
//   azd up            (reads infra/main.parameters.json)
//
// Every client authenticates with Entra ID. The only secrets (upstream model keys, the client
// hash key) go into a Key Vault through @secure() parameters and reach the app as Key Vault
// references; no output returns one. The backends are private (internal Container Apps
// environment in a virtual network the Function App joins).

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Environment name; names the resource group and seeds the unique resource suffix.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
// Regions offering Flex Consumption as Microsoft's Flex quickstart templates list them; a region
// outside this list fails here, before anything is created. Extend it as Flex reaches more.
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of a person, group or service principal to get Table Data Contributor (edit limit overrides, run the keys admin CLI); empty for none.')
param principalId string = ''

@description('Kind of principalId; azd sets AZURE_PRINCIPAL_TYPE (User locally, ServicePrincipal in CI).')
@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'

@description('Memory per Function App instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Upper bound of Function App instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

// perInstanceConcurrency = 200, from make bench-streams (load/bench_streams.py; docs/perf/history.md,
// "Streams, fourth pass"): 20 s streams of 100 ms chunks through the local host and the real
// worker cost the worker 0.8-1.1 ms of CPU per stream-second (80-110 us per chunk, opens
// included) and the local host 0.5-0.7 ms. A 2048 MB Flex instance has about one core, shared by
// the platform's host and the worker: host + worker saturate it near 550-770 streams (the
// worker's one event loop alone near 900-1,250). 200 asks 0.26-0.36 of the core: safety factor
// ~3 to saturation, in the range where the 10 ms-p99-added target held on the shared 2-core
// build machine (100 streams; 1,000 streams held with 0 errors but TTFT p99 +2.6 s: not met).
// The platform's host relays the stream in Azure and was not measured: check the instance's CPU
// before raising this. Memory is not the limit: 77-97 KB per stream, 200 streams add about 20 MB
// to the ~125 MB host + worker at rest, so instanceMemoryMB stays 2048.
// Fifth pass (docs/perf/pass5-streams.md): the local host 48 us per chunk (was 70), the worker
// 93 (within noise of 100); a loopback write alone costs 25-30 us per hop per chunk on the build
// machine. Per stream-second: worker 1.08 ms, host 0.54 ms: one core near 540-620 streams, 200
// unchanged (safety factor ~3).
// Ninth pass (docs/perf/pass9-streamfloor.md): a bare ten-line streaming function on the same
// host and worker missed 10 ms added p99 at every level from 50 streams too, so the build
// machine cannot resolve the target; the gateway spent 0.96-1.18x its CPU per chunk. 200 stays.
// Pass 13 (docs/perf/pass13-streams.md): the gateway's worker executes 0.89x the bare function's
// instructions per chunk (callgrind). One event loop's queue keeps p99 added within 10 ms up to
// about 0.85 / (chunks per second x CPU per chunk + CPU per open / stream length) streams: 460-920
// with the host on the same core at the measured 0.94-1.70 ms of host + worker CPU per
// stream-second (load/stream_ceiling.py). 200 is the low end over a safety factor of ~2 (the
// platform's host, bursts of opens, non-stream requests). Memory: up to 64 KB more per stream
// (the sent-token count deferred), 15-30 MB for 200 streams; instanceMemoryMB 2048 stands.
// UPSTREAM_MAX_CONNECTIONS (512) must stay above this value: each stream holds one backend
// connection.
@description('Concurrent HTTP requests per Function App instance before scale-out.')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 200

@description('Blob container for the Flex Consumption deployment package.')
param deploymentContainerName string = 'app-package'

@description('Table holding rate-limit counters.')
param rateLimitTableName string = 'ratelimits'

@description('How instances share rate limits: tally (two storage calls per instance per period, whatever the number of instances and keys; the default here because the app scales out) or lease (exact for small limits; storage calls per request grow with the instances on a key).')
@allowed([
  'lease'
  'tally'
])
param rateLimitSync string = 'tally'

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

@description('Deploy Azure Managed Redis (Entra ID auth) as the shared response-cache tier; off uses blob storage.')
param deployRedis bool = false

@description('Deploy an Azure OpenAI account with one deployment (key auth off, the gateway identity as Cognitive Services OpenAI User) and route its model to it; docs/AZURE_OPENAI.md.')
param deployOpenAI bool = false
@description('Deploy an Azure AI Content Safety account (local auth off) for the guardrails, with Cognitive Services User for the gateway identity; GUARDRAILS (in gatewaySettings) picks the checks.')
param deployContentSafety bool = false

@description('Gateway settings to change, e.g. {"UPSTREAM_TIMEOUT_S": "60"}; merged over the defaults below. Secure, so a value given here stays out of the deployment history; still, put upstream keys in modelApiKeys.')
@secure()
param gatewaySettings object = {}

@description('MODEL_API_KEYS (JSON: backend name -> key for the upstream model), stored in the Key Vault and referenced from the app settings; empty means no upstream keys.')
@secure()
param modelApiKeys string = ''

@description('MCP_SESSION_KEY (base64 of at least 32 random bytes: openssl rand -base64 32), stored in the Key Vault. Empty: one is made from secretSeed, new at every provision (open MCP sessions then end).')
@secure()
param mcpSessionKey string = ''

@description('RESPONSES_ID_SECRET (the MAC key of stored-response ids), stored in the Key Vault. Empty: one is made from secretSeed, new at every provision (stored responses made before it can no longer be fetched through the gateway).')
@secure()
param responsesIdSecret string = ''

@description('Random per deployment (newGuid), the source of mcpSessionKey and responsesIdSecret when they are empty. Leave it to its default.')
@secure()
param secretSeed string = newGuid()

// Default of every gateway setting in function_app/settings/specs.py SPECS, as strings, except
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
  RATE_LIMIT_STORAGE_TIMEOUT_S: '0.5'
  RATE_LIMIT_FAILURE_MODE: 'open'
  // The fleet the limiter assumes before a tally summary counts it, and while storage is down:
  // the app's instance bound, so a cold start of the whole fleet or an outage admits at most
  // about a limit, not N/4 of it (docs/ratelimit-tally.md).
  RATE_LIMIT_EXPECTED_INSTANCES: string(maximumInstanceCount)
  RATE_LIMIT_LEASE_S: '0.25'
  RATE_LIMIT_LEASE_TTL_S: '4'
  RATE_LIMIT_SYNC: rateLimitSync
  RATE_LIMIT_TALLY_PERIOD_S: '3'
  RATE_LIMIT_EXACT_BELOW_RPS: '1'
  RATE_LIMIT_GLOBAL_SHARDS: '1'
  RATE_LIMIT_CONFLICT_RETRIES: '3'
  RATE_LIMIT_OVERRIDES_REFRESH_S: '30'
  RATE_LIMIT_SWEEP_INTERVAL_S: '300'
  RATE_LIMIT_SWEEP_IDLE_S: '600'
  MODEL_ROUTES: ''
  DEFAULT_MODEL_BACKEND: ''
  CLIENT_TPM: '200000'
  MODEL_TPM: '1000000'
  DEFAULT_MAX_TOKENS: '1024'
  SSE_MAX_EVENT_BYTES: '1048576'
  STORAGE_SDK_LOG_LEVEL: 'WARNING'
  RETRY_MAX_ATTEMPTS: '2'
  RETRY_BUDGET_RATIO: '0.2'
  RETRY_BUDGET_MIN_PER_S: '3'
  RETRY_BUDGET_WINDOW_S: '10'
  BREAKER_FAILURES: '5'
  BREAKER_FAILURE_RATE: '0.5'
  BREAKER_MIN_REQUESTS: '20'
  BREAKER_WINDOW_S: '10'
  BREAKER_OPEN_S: '2'
  BREAKER_CACHE_S: '0.5'
  ROUTING_TABLE: 'routing'
  HEALTH_CHECK_LEASE_S: '25'
  HEALTH_CHECK_SCHEDULE: '*/10 * * * * *'
  CACHE_ENABLED: 'true'
  CACHE_TTL_SECONDS: '30'
  CACHE_ROUTES: ''
  CACHE_MEMORY_BYTES: '67108864'
  CACHE_MAX_ENTRY_BYTES: '1048576'
  CACHE_SHARED_TIMEOUT_S: '0.25'
  CACHE_BLOB_CONNECTION: ''
  CACHE_BLOB_CONTAINER: 'gatewaycache'
  CACHE_COMPLETIONS: ''
  CACHE_COMPLETIONS_SHARED: 'false'
  CACHE_HIT_CHARGES_TOKENS: 'false'
  GATEWAY_AUTH: 'none'
  GATEWAY_KEY_CACHE_TTL_S: '4'
  GATEWAY_KEY_LOOKUPS_PER_S: '50'
  GATEWAY_USAGE_FLUSH_S: '60'
  MODEL_PRICES: ''
  // MCP servers behind /mcp/{name} (#29, docs/MCP.md). MCP_SESSION_KEY is wired below, from the
  // Key Vault, so that every instance can carry on every session.
  MCP_SERVERS: ''
  MCP_SESSION_TTL_S: '86400'
  MCP_MAX_MESSAGE_BYTES: '1048576'
  MCP_MAX_EVENT_BYTES: '4194304'
  MCP_STREAM_TIMEOUT_S: '220'
  // Telemetry (#13); Application Insights settings are wired in modules/functionapp.bicep.
  TELEMETRY_ENABLED: 'true'
  TELEMETRY_TRACE_SAMPLE_RATIO: '0.1'
  TELEMETRY_REQUEST_LOG: 'true'
  TELEMETRY_CLIENT_LABELS: '200'
  OTEL_EXPORTER_OTLP_ENDPOINT: ''
  // Guardrails (#28): the endpoint is wired below when deployContentSafety; the identity signs
  // in (entra), so no key. GUARDRAILS is set through gatewaySettings (docs/GUARDRAILS.md).
  CONTENT_SAFETY_AUTH: 'entra'
  CONTENT_SAFETY_KEY: ''
  CONTENT_SAFETY_TIMEOUT_S: '2'
  CONTENT_SAFETY_RPS: '100'
  GUARDRAILS: ''
}

// In Azure the Functions host forwards each request to the worker over loopback with YARP's
// default transformer, which sets (replaces, never appends) X-Forwarded-For/-Host/-Proto: the
// loopback peer is the one proxy whose forwarded headers the gateway may believe. Locally
// (SPECS default, empty) nothing but the peer is trusted. README, Security.
var azureHostProxies = '127.0.0.1/32,::1/128'

// Gateway settings whose values come from the resources this template creates.
var gatewayWiredSettings = {
  TRUSTED_PROXIES: azureHostProxies
  // Secrets: Key Vault references, resolved by the platform with the gateway identity.
  MODEL_API_KEYS: keyVaultReference(keyVaultName, 'model-api-keys')
  TELEMETRY_CLIENT_HASH_KEY: keyVaultReference(keyVaultName, 'telemetry-client-hash-key')
  // The same on every instance: any instance carries on an MCP session or a stored response.
  MCP_SESSION_KEY: keyVaultReference(keyVaultName, 'mcp-session-key')
  RESPONSES_ID_SECRET: keyVaultReference(keyVaultName, 'responses-id-secret')
  PY_SERVICE_URL: pythonBackend.outputs.url
  NODE_SERVICE_URL: nodeBackend.outputs.url
  TABLE_STORAGE_ENDPOINT: storage.outputs.tableEndpoint
  RATE_LIMIT_TABLE: rateLimitTableName
  LIMIT_OVERRIDES_TABLE: limitOverridesTableName
  // The cache's shared tier: Azure Managed Redis when deployed (deployRedis), else the app's own
  // blob storage through the managed identity.
  CACHE_BACKEND: deployRedis ? 'redis' : 'blob'
  CACHE_REDIS_URL: deployRedis ? redis.outputs.url : ''
  CACHE_REDIS_ENTRA: deployRedis ? 'true' : 'false'
  CACHE_BLOB_ENDPOINT: storage.outputs.blobEndpoint
  GATEWAY_KEYS_TABLE: gatewayKeysTableName
  // Azure OpenAI when deployed (deployOpenAI): its deployment, reached with the managed identity.
  GATEWAY_BACKENDS: deployOpenAI ? string({
    aoai: {
      url: openAi.outputs.endpoint
      api: 'azure'
      auth: 'entra'
      api_version: '2024-10-21'
      deployment: openAi.outputs.deploymentName
    }
  }) : ''
  MODEL_ROUTES: deployOpenAI ? string({ '${openAi.outputs.deploymentName}': 'aoai' }) : ''
  CONTENT_SAFETY_ENDPOINT: deployContentSafety ? contentSafety.outputs.endpoint : ''
}

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

// Secret name in the vault -> value. Key Vault refuses empty values: no upstream keys is '{}'
// (an empty JSON object, which MODEL_API_KEYS reads as "none").
var vaultSecrets = {
  'model-api-keys': empty(modelApiKeys) ? '{}' : modelApiKeys
  // A per-deployment key for hashing client ids in metrics and logs.
  'telemetry-client-hash-key': '${uniqueString(subscription().id, rg.id, 'client-hash')}${uniqueString(rg.id, environmentName, 'client-hash')}'
  // 72 bytes from two GUIDs of a random seed; the gateway hashes them to its AES key.
  'mcp-session-key': empty(mcpSessionKey) ? base64('${secretSeed}${guid(secretSeed, 'mcp-session')}') : mcpSessionKey
  'responses-id-secret': empty(responsesIdSecret) ? '${guid(secretSeed, 'responses-id')}${secretSeed}' : responsesIdSecret
}

var keyVaultName = 'kv-${resourceToken}'

// An app setting value the platform replaces with the secret's current value.
func keyVaultReference(vaultName string, secretName string) string =>
  '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${secretName})'
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

// The private network of the backends and of the gateway's outbound traffic (VNet integration).
module network 'modules/network.bicep' = {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    secrets: vaultSecrets
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
    keyVaultName: keyVault.outputs.name
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
    backendsPrincipalId: backendsIdentity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
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
    infrastructureSubnetId: network.outputs.backendsSubnetId
  }
}

// The backends' names resolve to the environment's internal address inside the network only.
module backendDns 'modules/privatedns.bicep' = {
  name: 'backend-dns'
  scope: rg
  params: {
    zoneName: containerEnv.outputs.defaultDomain
    staticIp: containerEnv.outputs.staticIp
    vnetId: network.outputs.id
    tags: tags
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

module redis 'modules/redis.bicep' = if (deployRedis) {
  name: 'redis'
  scope: rg
  params: {
    name: 'redis-${resourceToken}'
    location: location
    tags: tags
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
  }
}

module openAi 'modules/openai.bicep' = if (deployOpenAI) {
  name: 'openai'
  scope: rg
  params: {
    name: 'oai-${resourceToken}'
    location: location
    tags: tags
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
  }
}

// Guardrails (#28): Content Safety and Prompt Shields, called with the gateway identity.
module contentSafety 'modules/contentsafety.bicep' = if (deployContentSafety) {
  name: 'content-safety'
  scope: rg
  params: {
    name: 'cs-${resourceToken}'
    location: location
    tags: tags
    gatewayPrincipalId: gatewayIdentity.outputs.principalId
  }
}

// The dashboard's panels over Application Insights (README, Observability).
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: tags
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'function-app'
  scope: rg
  // The host needs its storage and Key Vault roles before it first starts, and the backends'
  // names must resolve in the network.
  dependsOn: [roles, backendDns]
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
    virtualNetworkSubnetId: network.outputs.gatewaySubnetId
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
output KEY_VAULT_NAME string = keyVault.outputs.name
// Private: these names resolve only inside the virtual network.
output PY_SERVICE_URL string = pythonBackend.outputs.url
output NODE_SERVICE_URL string = nodeBackend.outputs.url
