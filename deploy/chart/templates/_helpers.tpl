{{/* The release's name for its objects: "slipway" itself when the release is called so. */}}
{{- define "slipway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "slipway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "slipway.labels" -}}
{{ include "slipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "slipway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "slipway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* slipway.yaml: the values' config with the chart's dataDir and listen, which win. */}}
{{- define "slipway.config" -}}
{{- $cfg := mergeOverwrite (deepCopy .Values.config) (dict "dataDir" "/var/lib/slipway" "listen" ":8080") -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* "true" when slipway.yaml coordinates replicas (config.ha), else "". */}}
{{- define "slipway.ha" -}}
{{- if .Values.config.ha -}}true{{- end -}}
{{- end -}}

{{/* The namespace of the ha: Leases, which slipway.yaml requires. */}}
{{- define "slipway.haNamespace" -}}
{{- required "config.ha.namespace: the namespace of the replicas' Leases" .Values.config.ha.namespace -}}
{{- end -}}
