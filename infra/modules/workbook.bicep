// An Azure Monitor workbook over the gateway's Application Insights: the panels of the live
// dashboard (GET /_gateway/dashboard), so a deployed app has the same view with no extra work.
// The panels (KQL) are in workbook.json, which tests/infra checks.

param appInsightsName string
param location string
param tags object = {}
param displayName string = 'AI gateway'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; stable per component, so redeploying updates it.
  name: guid(appInsights.id, 'ai-gateway-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
    version: 'Notebook/1.0'
  }
}

output id string = workbook.id
