{{/* Names and labels. */}}
{{- define "cognito-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cognito-authz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cognito-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cognito-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cognito-authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cognito-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cognito-authz
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cognito-authz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cognito-authz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag. */}}
{{- define "cognito-authz.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the chart mounts what it mounts. Sibling directories, never nested in the read-only config volume. */}}
{{- define "cognito-authz.configDir" -}}/etc/cognito-authz/config{{- end }}
{{- define "cognito-authz.tlsDir" -}}/etc/cognito-authz/tls{{- end }}
{{- define "cognito-authz.sessionDir" -}}/etc/cognito-authz/session{{- end }}

{{- define "cognito-authz.configMapName" -}}
{{- if .Values.existingConfigMap.name }}{{ .Values.existingConfigMap.name }}{{ else }}{{ include "cognito-authz.fullname" . }}{{ end }}
{{- end }}

{{- define "cognito-authz.configKey" -}}
{{- if .Values.existingConfigMap.name }}{{ .Values.existingConfigMap.key }}{{ else }}config.yaml{{ end }}
{{- end }}

{{/*
The service's config file as rendered from .Values.config, with the paths of the mounted Secrets filled
in (TLS files, the browser session key file), so they cannot disagree with the mounts.
*/}}
{{- define "cognito-authz.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if not $cfg.pools }}
{{- fail "config.pools: at least one Cognito user pool is required (or set existingConfigMap.name)" }}
{{- end }}
{{- if .Values.tls.existingSecret }}
{{- $server := default dict $cfg.server }}
{{- $tls := default dict $server.tls }}
{{- $_ := set $tls "cert_file" (printf "%s/%s" (include "cognito-authz.tlsDir" .) .Values.tls.certKey) }}
{{- $_ := set $tls "key_file" (printf "%s/%s" (include "cognito-authz.tlsDir" .) .Values.tls.keyKey) }}
{{- if .Values.tls.clientAuth }}
{{- $_ := set $tls "client_ca_file" (printf "%s/%s" (include "cognito-authz.tlsDir" .) .Values.tls.caKey) }}
{{- end }}
{{- $_ := set $server "tls" $tls }}
{{- $_ := set $cfg "server" $server }}
{{- end }}
{{- if and .Values.sessionKeys.existingSecret $cfg.browser }}
{{- if not $cfg.browser.session_keys_file }}
{{- $_ := set $cfg.browser "session_keys_file" (printf "%s/%s" (include "cognito-authz.sessionDir" .) .Values.sessionKeys.key) }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The replicas the PDB must leave: the HPA's minimum (or replicaCount) less one, never below 0. */}}
{{- define "cognito-authz.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas | int }}{{ else }}{{ .Values.replicaCount | int }}{{ end }}
{{- end }}
