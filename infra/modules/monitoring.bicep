// Log Analytics workspace plus workspace-based Application Insights with local (key) auth off:
// telemetry is accepted only with an Entra token (the gateway identity has Monitoring Metrics
// Publisher on the component, see roles.bicep).

param logAnalyticsName string
param appInsightsName string
param location string
param tags object = {}

@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name
// With DisableLocalAuth the instrumentation key in this string cannot ingest on its own.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
