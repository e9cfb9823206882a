// The virtual network that keeps the backends private (docs/DEPLOY.md, "Backends reachable only
// through the gateway"). Two subnets, both delegated to Microsoft.App/environments:
//   gateway  - the Flex Consumption app's outbound VNet integration (Flex requires this delegation);
//   backends - the internal Container Apps environment (workload profiles: /27 at least).
// Nothing here has a public address: the environment is internal (no public inbound IP).

param name string
param location string
param tags object = {}

@description('Address space of the network.')
param addressPrefix string = '10.60.0.0/16'

param gatewaySubnetPrefix string = '10.60.0.0/24'
param backendsSubnetPrefix string = '10.60.2.0/23'

var appDelegation = [
  {
    name: 'app-environments'
    properties: {
      serviceName: 'Microsoft.App/environments'
    }
  }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [addressPrefix]
    }
    subnets: [
      {
        name: 'gateway'
        properties: {
          addressPrefix: gatewaySubnetPrefix
          delegations: appDelegation
        }
      }
      {
        name: 'backends'
        properties: {
          addressPrefix: backendsSubnetPrefix
          delegations: appDelegation
        }
      }
    ]
  }
}

output id string = vnet.id
output gatewaySubnetId string = '${vnet.id}/subnets/gateway'
output backendsSubnetId string = '${vnet.id}/subnets/backends'
