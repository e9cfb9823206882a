// Name resolution for the internal Container Apps environment: its apps' FQDNs
// (<app>.<defaultDomain>) resolve only inside the virtual network, to the environment's
// internal load balancer. Without this zone the gateway could not find the backends.

@description('The environment default domain (managedEnvironments properties.defaultDomain).')
param zoneName string

@description('The environment internal load balancer address (properties.staticIp).')
param staticIp string

param vnetId string
param tags object = {}

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneName
  location: 'global'
  tags: tags
}

resource wildcard 'Microsoft.Network/privateDnsZones/A@2024-06-01' = {
  parent: zone
  name: '*'
  properties: {
    ttl: 300
    aRecords: [
      {
        ipv4Address: staticIp
      }
    ]
  }
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: zone
  name: 'backends'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}
