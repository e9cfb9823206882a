// Container Apps environment for the backends. Logs go to the shared Log Analytics workspace
// through a diagnostic setting (destination 'azure-monitor'), so no workspace key is needed.
// Internal: the environment has no public inbound address, only an internal load balancer in
// its subnet, so its apps are reachable from the virtual network (the gateway's VNet
// integration) and not from the internet. privatedns.bicep makes their names resolve there.

param name string
param location string
param tags object = {}
param workspaceId string

@description('Subnet (delegated to Microsoft.App/environments) the environment runs in.')
param infrastructureSubnetId string

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    vnetConfiguration: {
      internal: true
      infrastructureSubnetId: infrastructureSubnetId
    }
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

output id string = environment.id
output name string = environment.name
output defaultDomain string = environment.properties.defaultDomain
output staticIp string = environment.properties.staticIp
