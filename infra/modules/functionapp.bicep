// The gateway: a Python Function App on the Flex Consumption plan (FC1).
//
// The host reaches its storage, the deployment package and Application Insights through the
// user-assigned identity; no connection string with a key appears anywhere. App settings are the
// gateway's own (passed in) merged under the platform ones below, which always win.

param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the same identity (host storage, telemetry, azure-identity).')
param identityClientId string

param storageAccountName string

@description('Blob endpoint of the storage account, with its trailing slash.')
param blobEndpoint string

param deploymentContainerName string
param appInsightsConnectionString string

@allowed(['3.13'])
param pythonVersion string = '3.13'

@description('Memory per instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

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
// UPSTREAM_MAX_CONNECTIONS (512) must stay above this value: each stream holds one backend
// connection.
@description('Concurrent HTTP requests one instance takes before the platform adds another. Python defaults to 1, which wastes an async gateway.')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 200

// Secure: overrides given at deploy time may hold secrets, which must stay out of the deployment
// history (a module's parameters are recorded in its nested deployment).
@description('Gateway settings (SPECS in function_app/settings/specs.py), already merged.')
@secure()
param appSettings object

@description('Subnet (delegated to Microsoft.App/environments) for outbound VNet integration; the private backends are reachable only from there.')
param virtualNetworkSubnetId string

// Settings the platform needs, not the gateway code. Keep tests/infra AZURE_ONLY in step.
var platformSettings = {
  // The worker imports this root file (a function_app/ package shadows function_app.py).
  PYTHON_SCRIPT_FILE_NAME: 'main.py'
  // Required on Python <= 3.12 for azurefunctions-extensions-http-fastapi (streaming); kept on
  // 3.13 since no documentation says the 3.13 worker ignores it.
  PYTHON_ENABLE_INIT_INDEXING: '1'
  // The worker continues the host's trace in each invocation and tells the host it exports its
  // own telemetry; the gateway configures Azure Monitor itself (README, Observability), so the
  // worker's own distro set-up stays off: two set-ups would instrument and export twice.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'false'
  // Host storage through the user-assigned identity.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Telemetry with Entra auth (the component has local auth disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential / ManagedIdentityCredential pick the user-assigned identity by this.
  AZURE_CLIENT_ID: identityClientId
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'gateway' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Outbound traffic to private addresses (the backends) goes through the virtual network.
    virtualNetworkSubnetId: virtualNetworkSubnetId
    // Key Vault references (@Microsoft.KeyVault(...)) are resolved with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: union(appSettings, platformSettings)
  }

  // No basic-auth (user name and password) publishing: deployments authenticate with Entra ID
  // (azd and Core Tools do for Flex Consumption).
  resource ftpCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmCredentials 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
