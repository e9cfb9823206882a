// One inference simulator as a container app in the internal environment (containerenv.bicep).
//
// Ingress `external: true` here means "reachable through the environment's inbound address",
// which for an internal environment is a private address in the virtual network: the gateway
// (VNet-integrated) reaches it, the internet does not. `external: false` would limit it to apps
// in the same environment, which the gateway is not.
//
// Ports: the template gives every revision the same port, PORT = targetPort = `port`, whatever
// the image. `azd deploy` swaps only the image of the latest revision (it keeps env and ingress:
// docs/DEPLOY.md cites azd's source), so the real image must find its port in the template.

@maxLength(32)
param name string

@description('Service name in azure.yaml; azd finds the app by this tag.')
param serviceName string

param location string
param tags object = {}
param environmentId string

@description('Image reference; empty uses a public placeholder until the real image is pushed.')
param image string = ''

@minValue(1)
@maxValue(65535)
param port int

@description('Resource id of the user-assigned identity that pulls from the registry.')
param identityId string

param registryServer string

@minValue(0)
param minReplicas int = 1

@minValue(1)
param maxReplicas int = 10

@description('Concurrent requests per replica before Container Apps adds a replica.')
@minValue(1)
param concurrentRequestsPerReplica int = 100

// Used on the first `azd provision`, before any image exists: the .NET sample web app, which
// runs as a non-root user and listens on ASPNETCORE_HTTP_PORTS (.NET 8+ images), so it serves on
// `port` like the real images, which read PORT and ignore ASPNETCORE_HTTP_PORTS.
var placeholderImage = 'mcr.microsoft.com/dotnet/samples:aspnetapp'

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        transport: 'auto'
        allowInsecure: false
      }
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: serviceName
          image: empty(image) ? placeholderImage : image
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: [
            {
              name: 'PORT'
              value: string(port)
            }
            {
              name: 'ASPNETCORE_HTTP_PORTS'
              value: string(port)
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequestsPerReplica)
              }
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
// Resolves only inside the virtual network (privatedns.bicep).
output url string = 'https://${app.properties.configuration.ingress.fqdn}'
