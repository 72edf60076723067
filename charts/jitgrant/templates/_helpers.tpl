{{/* Names, labels and small decisions shared by the templates. */}}

{{- define "jitgrant.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jitgrant.fullname" -}}
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

{{- define "jitgrant.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* The grants namespace; never the operator's own (its Secrets include the receipt key, and the
operator may read every Secret of the grants namespace). */}}
{{- define "jitgrant.grantsNamespace" -}}
{{- if eq .Values.grantsNamespace (include "jitgrant.namespace" .) }}
{{- fail (printf "grantsNamespace: %q is the operator's own namespace; name another (the operator may read every Secret in the grants namespace, and its own holds the receipt key)" .Values.grantsNamespace) }}
{{- end }}
{{- .Values.grantsNamespace }}
{{- end }}

{{/* Objects of the chart are managed by Helm. Never `jitgrant`: that label marks the grant
objects the operator creates, and its sweep deletes what carries it. */}}
{{- define "jitgrant.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "jitgrant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jitgrant
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "jitgrant.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jitgrant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jitgrant.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jitgrant.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference. global.imageRegistry replaces the repository's registry (the first path
element when it looks like a host: has a dot or a colon, or is localhost), or is prefixed when the
repository names none. */}}
{{- define "jitgrant.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- $repository := .Values.image.repository }}
{{- $registry := "" }}
{{- if .Values.global }}{{ $registry = .Values.global.imageRegistry | default "" }}{{ end }}
{{- if $registry }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repository = join "/" (rest $parts) }}
{{- end }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* "true" when the webhook's certificate comes from cert-manager. */}}
{{- define "jitgrant.certManager" -}}
{{- $mode := .Values.webhook.certManager.enabled }}
{{- if eq (toString $mode) "auto" }}
{{- .Capabilities.APIVersions.Has "cert-manager.io/v1" }}
{{- else }}
{{- $mode }}
{{- end }}
{{- end }}

{{- define "jitgrant.webhookServiceName" -}}
{{- printf "%s-webhook" (include "jitgrant.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jitgrant.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "jitgrant.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jitgrant.receiptSecretName" -}}
{{- default (printf "%s-receipt-key" (include "jitgrant.fullname" .)) .Values.receiptKey.existingSecret }}
{{- end }}

{{/* Pod and container security, shared by the operator and the uninstall hook. */}}
{{- define "jitgrant.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "jitgrant.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The audit settings file: the values' audit.config with the spool where the chart mounts it. */}}
{{- define "jitgrant.auditConfig" -}}
{{- $config := deepCopy .Values.audit.config }}
{{- $_ := set $config "spoolDir" "/var/lib/jitgrant/spool" }}
{{- toYaml $config }}
{{- end }}
