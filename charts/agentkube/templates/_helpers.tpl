{{/* Full reference of an image under image.registry. */}}
{{- define "agentkube.image" -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .registry) .repository .tag -}}
{{- end -}}

{{/* Labels every object of the runtime plane carries. */}}
{{- define "agentkube.labels" -}}
app.kubernetes.io/name: agentkube-manager
app.kubernetes.io/part-of: agentkube
{{- end -}}
