{{/* Labels every object of the control plane carries. */}}
{{- define "exo-app.labels" -}}
app.kubernetes.io/name: exo-app
app.kubernetes.io/part-of: exo
{{- end -}}

{{/* The Secret exo-app reads its secrets from. */}}
{{- define "exo-app.secretName" -}}
{{- .Values.existingSecret | default "exo-app" -}}
{{- end -}}
