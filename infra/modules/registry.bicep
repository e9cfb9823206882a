// Container registry for the backend images. No admin user (anonymous pull is off by default on
// every SKU): the backends' identity pulls with AcrPull (roles.bicep); `az acr build` and azd push
// with the caller's own Entra login.

@minLength(5)
@maxLength(50)
param name string

param location string
param tags object = {}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
