{{/* The release's name for every object (at most 63 characters). */}}
{{- define "twinengine.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "twinengine.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: engine
{{- end -}}

{{- define "twinengine.labels" -}}
{{ include "twinengine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* image: repository@digest when a digest is given, else repository:tag (default appVersion). */}}
{{- define "twinengine.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Several engines need what they share: PostgreSQL, NATS, a shared keys volume. */}}
{{- define "twinengine.check" -}}
{{- if .Values.store.enginesShareStore -}}
{{- if not .Values.store.databaseUrlSecret.name -}}
{{- fail "store.enginesShareStore needs store.databaseUrlSecret (a PostgreSQL store)" -}}
{{- end -}}
{{- if ne .Values.streams.backend "nats" -}}
{{- fail "store.enginesShareStore needs streams.backend nats" -}}
{{- end -}}
{{- else if gt (int .Values.replicas) 1 -}}
{{- fail "replicas above 1 need store.enginesShareStore (PostgreSQL and NATS)" -}}
{{- end -}}
{{- end -}}
