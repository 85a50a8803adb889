{{- define "hybridgate.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridgate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hybridgate.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hybridgate.secretName" -}}
{{- default (printf "%s-env" (include "hybridgate.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{/* The pod spec pieces the Deployment and the migration Job share. */}}
{{- define "hybridgate.volumes" -}}
- name: config
  configMap:
    name: {{ include "hybridgate.fullname" . }}
- name: home
  emptyDir: {}
- name: home-secret
  secret:
    secretName: {{ .Values.homeSecret }}
    defaultMode: 0400
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "hybridgate.volumeMounts" -}}
- name: config
  mountPath: /etc/hybridgate
  readOnly: true
- name: home
  mountPath: /var/lib/hybridgate
- name: home-secret
  mountPath: /var/lib/hybridgate/keys
  readOnly: true
- name: home-secret
  mountPath: /var/lib/hybridgate/deployment.secret
  subPath: deployment.secret
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "hybridgate.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
