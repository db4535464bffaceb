{{/* The release's object names: the release name, prefixed with "sagekeeper-" unless it says sagekeeper. */}}
{{- define "sagekeeper.fullname" -}}
{{- if contains "sagekeeper" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "sagekeeper-%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sagekeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sagekeeper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sagekeeper.selectorLabels" -}}
app.kubernetes.io/name: sagekeeper
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sagekeeper.labels" -}}
{{ include "sagekeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
