// One inference simulator as a container app.
//
// Ingress is external (public HTTPS on *.azurecontainerapps.io) because a Flex Consumption app
// without VNet integration reaches only public endpoints; docs/DEPLOY.md says what a private
// setup needs. The container gets PORT = targetPort, so the listening port and the ingress
// port cannot drift apart.

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

// Used on the first `azd provision`, before any image exists. It listens on port 80, so while it
// runs the ingress targets 80 (else the first revision never activates); the real image
// listens on `port`, and `azd deploy` or a redeploy with `image` switches both.
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart:latest'
var placeholderPort = 80
var listenPort = empty(image) ? placeholderPort : port

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
        targetPort: listenPort
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
              value: string(listenPort)
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
output url string = 'https://${app.properties.configuration.ingress.fqdn}'
